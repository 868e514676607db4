"""The live request path: what an annotator's `next` and `answer` run, in the server's process.

`tasks` (leases, control and consistency questions, answers, trust updates), `views` (the
per-project constants cached for it), `aggregate` (one clip's verdict and the redundancy
decision after each answer) and `media` (the clip's audio and spectrogram as served). Work
here is bounded by the request, never by the project's size (issue 17).
"""
