"""listenloop: intelligent crowdsourcing of audio annotation.

Active learning decides which clips people should hear; crowd quality control decides
how many listeners each clip needs and whom to trust. See the README for the map.
"""

from listenloop._torch_block import keep_blocked_imports_blocked

keep_blocked_imports_blocked()

__version__ = "0.1.0"
