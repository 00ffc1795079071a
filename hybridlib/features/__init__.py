"""Features: what the models consume, computed from the data by the encoders.

* :mod:`~hybridlib.features.splits` - :class:`EncodedSplit` (one split flattened into clips and captions,
  with cached features) and its training/evaluation batches;
* :mod:`~hybridlib.features.cache` - :class:`FeatureCache`, frozen encoders' outputs on disk;
* :mod:`~hybridlib.features.waveform_cache` - :class:`WaveformCache`, waveforms resampled once for trainable
  backbones, and the check that leaves unreadable clips out;
* :mod:`~hybridlib.features.loader` - :class:`TrainingLoader`, the DataLoader (workers, pinned memory) that
  delivers an epoch's training batches;
* :mod:`~hybridlib.features.prepare` - :func:`prepare_data`: a training config's three splits, fingerprinted.
"""
