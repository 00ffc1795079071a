"""Models: audio backbones (``models.audio``), text encoders (``models.text``), pooling
(``models.pooling``), fusion blocks (``models.fusion``) and the retrieval model (``models.retrieval``)."""
