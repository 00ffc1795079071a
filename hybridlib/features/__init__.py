"""Features: what the models consume, computed from the data by the encoders.

* :mod:`~hybridlib.features.splits` - :class:`EncodedSplit` (one split flattened into clips and captions,
  with cached features) and its training/evaluation batches;
* :mod:`~hybridlib.features.cache` - :class:`FeatureCache`, frozen encoders' outputs on disk;
* :mod:`~hybridlib.features.waveforms` - torch ``Dataset`` s of waveforms for trainable backbones;
* :mod:`~hybridlib.features.prepare` - :func:`prepare_data`: a training config's three splits, fingerprinted.
"""
