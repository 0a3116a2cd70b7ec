"""Data for hjr: readers, crops, TFDS builders, the tf.data pipeline and its draws."""
