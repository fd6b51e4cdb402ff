"""The command-line tools, installed as console scripts (see docs/cli.md).

    cornernet-train        cornernet_tf.cli.train
    cornernet-evaluate     cornernet_tf.cli.evaluate
    cornernet-predict      cornernet_tf.cli.predict
    cornernet-export       cornernet_tf.cli.export
    cornernet-convert      cornernet_tf.cli.convert
    cornernet-make-shapes  cornernet_tf.cli.make_shapes

Each module has `main(argv=None) -> int` and runs with `python -m`. Exit codes
are the same for all: 0 done, 1 the work failed, 2 bad arguments, config,
model or data (one line on stderr). TensorFlow is imported only after the
arguments and the config are checked, so `--help` and usage errors answer at
once; keep module-level imports of these tools free of TensorFlow and Keras.
"""
