"""edge_fer.convert: Keras run directory -> verified full-int8 TFLite bundle (needs the 'train' extra)."""
