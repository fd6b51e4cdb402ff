"""What must be known before TensorFlow loads: the config schema and loader, the
packaged configs, the presets with their input-size rule, and the names of an
exported model's inputs, outputs and assets.

Nothing in `cornernet_tf.spec` imports TensorFlow or Keras (tests/test_layering.py
checks it), so the command-line tools validate arguments and configs at once.
"""
