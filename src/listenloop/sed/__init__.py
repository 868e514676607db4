"""Sound event detection from crowdsourced weak labels (issue 20, after 004_): soundscapes,
simulated segment annotators, segment-based metrics, the CRNN (torch) and the experiment."""
