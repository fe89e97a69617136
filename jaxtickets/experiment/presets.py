"""Pieces shared by the shipped configs, so each experiment file says only what differs."""

from __future__ import annotations

import ml_collections

from jaxtickets.config_schema import add_source

# P0's sources at CPU scale (configs/mnist_sources.py, configs/cifar10_sources.py); the
# random ticket is drawn from the labels ticket's mask at each evaluated level.
P0_CPU_SOURCES = {
    "labels": {"branches": "ticket,random_ticket"},
    "rotnet": {"task": "rotnet"},
    "exemplar": {"task": "exemplar"},
    "semisup": {"task": "semisup", "labelled_fraction": 0.1},
    "shuffled_labels": {"task": "shuffled_labels", "augment": False},  # P0: no augmentation
    "samples10": {"sample_fraction": 0.1},
    "classes50": {"class_fraction": 0.5},
}


def add_sources(config: ml_collections.ConfigDict, table: dict, names=None) -> None:
    for name in names or table:
        add_source(config, name, **table[name])


def shrink_to_smoke(config: ml_collections.ConfigDict) -> None:
    """A paper-scale CIFAR config cut to a few minutes of CPU: 200 images, batch 8, one
    epoch (25 steps), one level; sources keep their tasks and selections but use the
    shared budget."""
    config.num_replicates = 1
    config.data.validation_size, config.data.train_size = 100, 200
    config.data.test_size = 100
    config.train.batch_size = 8
    config.train.duration = "1ep"
    config.train.schedule, config.train.decay_at = "constant", ""  # 2-step subsets
    config.train.eval_every = config.train.checkpoint_every = "1ep"
    config.train.eval_batch_size = 100
    config.pruning.levels = 1
    config.pruning.rewind = "10%"
    config.pruning.evaluate_levels = "1"
    for name in config.generation.keys():
        source = config.generation[name]
        source.duration = source.decay_at = source.rewind = ""
    config.runtime.log_every_seconds = 60.0
