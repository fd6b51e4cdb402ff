"""Experiment configs, installed as the package `cornernet_tf.configs`.

This file makes the folder a regular package, so that an editable install
maps it too; `cornernet_tf.spec.catalog` lists the YAML files and resolves
`--config NAME`.
"""
