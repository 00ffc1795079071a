"""hybridlib: the helper package behind the hybrid-retrieval notebooks.

Reproduces and extends
  * Primus & Widmer, "Fusing Audio and Metadata Embeddings Improves Language-based Audio Retrieval", and
  * Mei et al., "On Metric Learning for Audio-Text Cross-Modal Retrieval".

Submodules are imported lazily so that ``import hybridlib`` stays cheap (no torch import).
"""

__version__ = "0.1.0"
