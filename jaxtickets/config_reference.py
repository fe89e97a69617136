"""The configuration reference: every config key, its default and what it means.

`DESCRIPTIONS` holds one entry per key of `config_schema.base_config()` (dotted, e.g.
'pruning.rates.conv') and one per key of a ticket source (`source_defaults()`, as
'generation.NAME.<key>'). `markdown()` renders the reference page: the keys and their
defaults are read from base_config() and source_defaults() when the page is made, and
every list of choices that a registry or a constant in the code holds (models, branches,
tasks, criteria, actions, optimizers, schedules, datasets, ...) is read from there too,
so the page follows the code. tests/test_config_reference.py fails on a key without a
description and on a description of a key that no longer exists.

    python -m jaxtickets.config_reference             # prints the page
    python -m jaxtickets.config_reference OUT.md      # writes it

Importing this module imports nothing else of the package; `markdown()` imports the
schema and the registries (JAX and Flax, never TFDS or Grain).
"""

from __future__ import annotations

import html
import pathlib
import re
import sys
from typing import Any, Callable, Iterable

SOURCE_PREFIX = "generation.NAME."

# Papers cited as P0-P4 (each has a page in docs/papers/).
PAPERS = {
    "P0": "tickets from limited or no supervision: self-supervised (RotNet, Exemplar), "
          "semi-supervised (S4L), few-sample and few-class ticket sources",
    "P1": "Morcos et al. 2019, one ticket to win them all: tickets transferred across "
          "datasets and optimizers",
    "P2": "Frankle & Carbin 2019, the lottery ticket hypothesis",
    "P3": "the sanity-checks appendix: a rigorous lottery-ticket test against random "
          "reinit (RR), small dense networks (SDT), OMP/IMP and weight rewinding",
    "P4": "Zhou et al. 2019, deconstructing lottery tickets: mask criteria, mask-1 and "
          "mask-0 actions, supermasks",
}

DESCRIPTIONS: dict[str, str] = {
    # ---- the experiment --------------------------------------------------------------
    "seed": "Seed of the whole experiment: every random draw of replicate r "
            "(initialization, batch order, augmentation, pruning's tie-breaking, control "
            "draws) derives from (seed, r, purpose). Must lie in 0..2**32-1 (JAX keeps 32 "
            "bits of a seed).",
    "num_replicates": "Independent trials (replicates 0..N-1), each with its own "
                      "initialization and batch order; tables report the mean and standard "
                      "error over them (P2: 5 trials, P0: 3-6 seeds).",
    "branches": "The runs trained or evaluated at each evaluated level: 'ticket' (the "
                "level's ticket itself) and control branches. 'ticket' is required unless "
                "the trajectory is one-shot, which may list controls alone (P4's supermask "
                "sweep). A list; on the command line comma-separated "
                "(`--config.branches=ticket,random_reinit`).",
    # ---- model -----------------------------------------------------------------------
    "model.name": "The network, by its registered name; the same model serves every "
                  "source and the evaluation (a source with another output size gets its "
                  "own head). Or your own by import path, 'package.module:attr': a Flax "
                  "linen module class or factory, or an NNX one (an nnx.Module class or a "
                  "factory taking rngs=), called with num_classes= (and dropout= where it "
                  "takes it), whose __call__ takes (images, train); its code runs when the "
                  "config is validated, and only the path enters the identity "
                  "(docs/extending.md).",
    "model.dropout": "Dropout rate of the models that have dropout layers; must lie in "
                     "[0, 1).",
    "model.compute_dtype": "'bfloat16': mixed precision, the forward and backward passes "
                           "compute in bf16 while parameters, masks, gradients, optimizer "
                           "state and BatchNorm statistics stay float32; 'float32': "
                           "everything in float32.",
    "model.init": "Kernel initializer: 'default' keeps each model's own (Gaussian Glorot "
                  "for LeNet, Conv-x and VGG, He fan_out for ResNets and MobileNet), any "
                  "other name redraws every conv and dense kernel with it (e.g. "
                  "'glorot_normal' for P2's ResNet-20). Biases and BatchNorm parameters "
                  "keep the model's own (model.bn_init sets BatchNorm's).",
    "model.bn_init": "BatchNorm scale and bias, OpenLTH's options: 'default' keeps the "
                     "model's own (scale 1, bias 0); 'fixed' sets scale 1, bias 0 "
                     "explicitly (Flax's and PyTorch's default); 'ones' scale 1, bias 1 "
                     "(OpenLTH's 'oneone'); 'uniform' scale ~ U(0, 1), bias 0; "
                     "'positive_negative' scale ~ U(-1, 1), bias 0. Any but 'default' is "
                     "refused for a model without BatchNorm.",
    # ---- data ------------------------------------------------------------------------
    "data.dataset": "The evaluation's dataset (and every source's, unless a source sets "
                    "its own). In-memory datasets are loaded onto the device; ImageNet and "
                    "Places365 are streamed from disk. Or your own by import path, "
                    "'package.module:function': function() returns {'train': (images, "
                    "labels), 'test': (images, labels)} with uint8 [N, H, W, C] images and "
                    "integer labels, optionally 'num_classes', held in memory like MNIST "
                    "(data.source is not read for it); only the path enters the identity "
                    "(docs/extending.md).",
    "data.source": "Where an in-memory dataset is read from: 'tfds' (prepared TFDS "
                   "array_record files; also the streamed datasets), 'embedded' (the "
                   "12,000/2,000-image MNIST subset shipped in the package, no download), "
                   "'npz' (one .npz file, data.npz_file; no TFDS needed).",
    "data.data_dir": "TFDS data directory read with data.source='tfds' and by the "
                     "streamed datasets; '' means TFDS's default.",
    "data.npz_file": "Path of the .npz read with data.source='npz' (x_train/y_train/"
                     "x_test/y_test as uint8 arrays, or JPEG buffers jpeg_*/offsets_*); "
                     "must be '' with any other source. The file must exist when the "
                     "config is checked.",
    "data.validation_size": "Training images held out (seeded by data.split_seed) for "
                            "early stopping on validation loss (P2: 5,000). 0 holds none "
                            "out (P0, P1, P3 train on every image): early stopping then "
                            "takes the last evaluation, and rows say so in "
                            "early_stop_basis.",
    "data.train_size": "In-memory datasets: train on a seeded subset of this many of the "
                       "images left after the validation split; 0: all of them. Refused "
                       "for streamed datasets (use a source's sample_fraction).",
    "data.test_size": "In-memory datasets: evaluate on a seeded subset of this many test "
                      "images; 0: the whole test split. Refused for streamed datasets.",
    "data.split_seed": "Seed of the data selections: the validation split, "
                       "data.train_size/test_size subsets, halves, and every source's "
                       "class, sample and label selections. Shared by all replicates, so "
                       "every replicate sees the same images.",
    "data.pad_crop": "On-device training augmentation: pad each image by this many pixels "
                     "and crop back at a random offset (CIFAR's usual 4); 0: off (P2's "
                     "Conv-x runs).",
    "data.flip": "On-device training augmentation: random horizontal flips.",
    "data.half": "'a' or 'b': the evaluation trains on one stratified half of the "
                 "training images (P1's CIFAR-10a/10b; the two halves are complementary); "
                 "'': all images.",
    "data.normalize": "Input normalization: 'standard' subtracts the dataset's "
                      "per-channel mean and divides by its std; 'unit' feeds pixels / 255 "
                      "in [0, 1], as P4's code does (it changes which masks are good "
                      "supermasks, P4 Table 1).",
    "data.image_size": "Streamed datasets: the side in pixels of the square crops the "
                       "network sees (random-resized crops in training, a centre crop "
                       "after resizing to size/0.875 in evaluation).",
    "data.rotation_degrees": "Streamed datasets: small random rotations, uniform in "
                             "+- this many degrees, before the random-resized crop (for "
                             "Exemplar-style augmentation); 0: none. Must lie in "
                             "[0, 180].",
    "data.color_jitter": "Streamed datasets: colour jitter (brightness, contrast, "
                         "saturation) on the evaluation's training images, and on a "
                         "source's unless the source sets its own; evaluation images are "
                         "never jittered. P0 App. A jitters only the 1% ImageNet subsets. "
                         "Refused where no streamed training split would read it.",
    "data.random_labels_fraction": "Label noise (OpenLTH's random_labels_fraction): "
                                   "round(fraction x N) of the evaluation's N training "
                                   "images (after data.half), chosen by data.split_seed "
                                   "and the same for every replicate, have their labels "
                                   "permuted among themselves; a chosen image may keep "
                                   "its class, and every class keeps its count (OpenLTH "
                                   "draws uniform classes instead). 1.0 gives exactly "
                                   "the shuffled_labels task's labels; validation and "
                                   "test labels are untouched. Sources training on that "
                                   "same split (data.dataset and data.half; the implicit "
                                   "source) see the noise, others do not. The run "
                                   "prints the changed count and per-class min/max. "
                                   "Must lie in [0, 1]; 0: off.",
    "data.blur_factor": "Blur (OpenLTH's blur_factor): each image of data.dataset is "
                        "averaged over factor x factor pixel blocks and upsampled back "
                        "by nearest neighbour (each block takes its rounded mean); "
                        "training, validation and test alike, in memory once after "
                        "loading, streamed per image after the crop. Sources reading "
                        "data.dataset see it blurred, other datasets are not. Both "
                        "image sides (data.image_size for streamed datasets) must be "
                        "divisible by it; 1: off.",
    # ---- train -----------------------------------------------------------------------
    "train.batch_size": "Examples per training step (the global batch, split over the "
                        "devices).",
    "train.duration": "The training budget of every run: a duration in steps, epochs or "
                      "examples ('50000st', '160ep', '3840000ex'; not '%'). Every run "
                      "trains to the end of this budget: the dense level 0 from step 0, a "
                      "pruned level from its rewind step (see pruning.restart_schedule).",
    "train.optimizer": "The optimizer of the evaluation's runs. Weight decay is L2 added "
                       "to the gradient for sgd, momentum and adam (PyTorch's semantics, "
                       "what the papers ran) and decoupled for adamw; updates never touch "
                       "pruned weights.",
    "train.learning_rate": "Base learning rate (the peak of the schedule); must be > 0.",
    "train.momentum": "Momentum coefficient of the 'momentum' optimizer, in [0, 1).",
    "train.nesterov": "Nesterov momentum; only with train.optimizer='momentum'.",
    "train.weight_decay": "L2 weight decay (decoupled for adamw); 0: none. P3's ResNets: "
                          "5e-4.",
    "train.schedule": "Learning-rate schedule over the budget: 'constant', 'step' "
                      "(multiplied by train.decay_factor at each train.decay_at), "
                      "'cosine' (decays to 0 at the end of train.duration).",
    "train.warmup": "Linear warmup: the learning rate is scaled from 0 up to the "
                    "schedule's value over this duration ('0st': none; P2's deep "
                    "networks: '10000st' or '20000st').",
    "train.decay_at": "Step schedule: the durations at which the learning rate is "
                      "multiplied by train.decay_factor, e.g. ('80ep', '120ep'); only "
                      "with train.schedule='step'. On the command line repeat the flag "
                      "(`--config.train.decay_at=80ep --config.train.decay_at=120ep`).",
    "train.decay_factor": "Step schedule: the factor applied at each train.decay_at "
                          "boundary; must be > 0.",
    "train.eval_every": "Interval, as a duration, between evaluations on the validation "
                        "and test splits; the early-stopping metrics (early_stop_*) are "
                        "taken at the evaluation with the lowest validation loss (P2). "
                        "Training always runs the whole budget. 'end': one evaluation, "
                        "when training ends (OpenLTH's evaluate-only-at-end); the "
                        "early-stop and final numbers are then that evaluation's.",
    "train.freeze": "Parameter groups that keep their starting values bit for bit and "
                    "get no optimizer state: 'batchnorm' (BatchNorm scales and biases), "
                    "'output' (the layer named output), 'others' (every other "
                    "parameter), 'all'. ('others', 'output') trains the BatchNorm "
                    "parameters only; running statistics still update. Applies to every "
                    "run, sources included (training/freezing.py). A group the model "
                    "lacks, or nothing left to train, is refused.",
    "train.freeze_except": "Path patterns (fnmatch on '/'-joined parameter paths, e.g. "
                           "'hidden_1/*' or '*/bn1/scale') that stay trainable although "
                           "train.freeze names their group: ('all',) with one pattern "
                           "trains that pattern only. Each must match a parameter; only "
                           "read when train.freeze names a group.",
    "train.eval_batch_size": "Examples per evaluation batch (rounded up to a multiple of "
                             "the device count); the whole split is evaluated exactly "
                             "once, padding weighted 0.",
    "train.checkpoint_every": "Interval, as a duration, between step checkpoints of a run "
                              "(the two newest are kept) from which an interrupted run "
                              "resumes.",
    # ---- pruning ---------------------------------------------------------------------
    "pruning.method": "'layerwise': each pruned layer loses its kind's rate "
                      "(pruning.rates.*) of its remaining weights per level (P2); "
                      "'global': pruning.rate of the remaining prunable weights, ranked "
                      "over all prunable layers together (P0, P1).",
    "pruning.levels": "Pruning levels after the dense level 0: level L keeps about "
                      "(1 - rate)^L of the weights (P2's LeNet: 27 levels, to 0.26%).",
    "pruning.rate": "Global pruning: the fraction of the remaining prunable weights removed "
                    "per level, strictly between 0 and 1 (P0, P1: 0.2). Only read when "
                    "pruning.method='global'.",
    "pruning.rates.conv": "Layer-wise pruning: fraction of each convolution's remaining "
                          "weights removed per level (P2's Conv-2/4/6: 0.1/0.1/0.15).",
    "pruning.rates.dense": "Layer-wise pruning: fraction of each hidden dense layer's "
                           "remaining weights removed per level (P2: 0.2).",
    "pruning.rates.output": "Layer-wise pruning: fraction of the output layer's remaining "
                            "weights removed per level (P2: 0.1, half the hidden rate).",
    "pruning.rates.shortcut": "Layer-wise pruning: fraction of each 1x1 projection "
                              "shortcut's remaining weights removed per level (ResNets).",
    "pruning.prune.conv": "Whether convolution kernels are prunable (False with "
                          "prune.dense=True: P2 App. H.6's dense-only pruning).",
    "pruning.prune.dense": "Whether hidden dense-layer kernels are prunable (False: P2 "
                           "App. H.6's conv-only pruning, P2's deep networks).",
    "pruning.prune.output": "Whether the output layer's kernel is prunable. Biases and "
                            "normalization parameters are never pruned.",
    "pruning.prune.shortcut": "Whether the 1x1 projection shortcuts of ResNets are "
                              "prunable.",
    "pruning.rewind": "Where the ticket's weights are taken from in the dense run: '0st' "
                      "resets to the initialization (P2); a later point is weight "
                      "rewinding ('1ep', '2500st', '3840000ex', '3.3%' of the budget; P0 "
                      "App. B, P3's WR). Pruned levels start training there, and so do "
                      "controls not listed in pruning.controls_from_scratch.",
    "pruning.restart_schedule": "After rewinding to step k: False trains the remaining "
                                "T - k steps with the schedule resumed at k; True trains T "
                                "steps from schedule step 0. Only read when some "
                                "trajectory rewinds later than step 0.",
    "pruning.evaluate_levels": "The levels that get result rows and control branches "
                               "(every level is still trained, IMP needs it): ('all',), "
                               "('morcos',) for levels 0-6 then every third (P0, P1 "
                               "tables), or level numbers such as (0, 3, 6).",
    "pruning.schedule": "'iterative' (IMP: each level prunes the previous level's trained "
                        "network) or 'one_shot' (OMP: level L prunes the trained dense "
                        "network at once to level L's density; P2 Sec. 2, P3).",
    "pruning.one_shot_spacing": "One-shot densities: 'geometric' keeps (1 - rate)^L at "
                                "level L, as IMP; 'linear' keeps 1 - L x rate (P2 Fig. "
                                "4c). Only read when a trajectory is one-shot; a linear "
                                "level that would prune 100% is refused.",
    "pruning.strategy": "'reset' (P2's strategy 1: every level restarts from the rewind "
                        "weights) or 'continue' (P2 App. B strategy 2: each level trains "
                        "on from the previous level's pruned final weights; the ticket "
                        "rows still rewind).",
    "pruning.criterion": "P4's mask criterion: the score by which each layer's unpruned "
                         "weights are ranked (the lowest are pruned, ties broken by a "
                         "seeded shuffle). 'large_final' is magnitude pruning.",
    "pruning.mask1_action": "P4 Sec. 3: what the kept weights start each level from: "
                            "'rewind' keeps the rewind weights, 'reinit' draws them afresh, "
                            "'reshuffle' permutes them within each layer, 'constant' sets "
                            "+-sigma_layer; '_sign' variants keep each rewind value's sign. "
                            "Another action than 'rewind' needs a trajectory whose runs "
                            "are the evaluated tickets (the evaluation's task, data and "
                            "recipe, strategy 'reset').",
    "pruning.mask0_action": "P4 Sec. 4: what pruned weights hold: 'zero', 'frozen_init' "
                            "(frozen at their initial value) or 'hybrid' (zero if |w| "
                            "shrank in the run that pruned them, else frozen at the initial "
                            "value). Another action than 'zero' has the condition of "
                            "pruning.mask1_action.",
    "pruning.first_conv_layers": "n > 0: only the first n convolution layers (in forward "
                                 "order) are prunable (P0 Sec. 4.1's layer-wise tickets, "
                                 "e.g. ResNet-50 11/24/43); 0: every prunable layer. Needs "
                                 "pruning.prune.conv=True.",
    "pruning.natural_zero_threshold": "The random_adjusted control (P0 Sec. 4.5): weights "
                                      "of the trained dense network with |w| below this "
                                      "are natural zeros and pruned first; default float32 "
                                      "machine epsilon. Must lie in (0, 1).",
    "pruning.controls_from_scratch": "Controls trained from step 0 for the whole "
                                     "train.duration with the schedule from its start "
                                     "(P3's RR and SDT) instead of from the ticket's rewind "
                                     "step, e.g. ('random_reinit', 'small_dense'); (): none. "
                                     "Each must be a branch some trajectory runs.",
    "pruning.control_draws": "Independent draws of each random control per level and "
                             "replicate (P2: 3 random reinitializations per trial); draw d "
                             "> 0 is its own run in level_LL/<branch>_draw<d>/ and its own "
                             "row with 'draw': d.",
    # ---- evaluation and sources ------------------------------------------------------
    "evaluation.task": "The task tickets are evaluated on; data.* and train.* are its data "
                       "and recipe. The papers evaluate on 'labels'.",
    "generation": "Ticket sources by name, each a group of the generation.NAME.* keys "
                  "below, added in a config file with add_source(config, NAME, **keys). "
                  "Empty: the evaluation generates its own tickets (P2's IMP on labels).",
    "generation.NAME.task": "The task the source's runs train on to find the ticket "
                            "(P0: labels, rotnet, exemplar, semisup, shuffled_labels). "
                            "The output head is replaced by the evaluation's where the "
                            "sizes differ.",
    "generation.NAME.dataset": "Another dataset to generate the ticket on (P1's transfers, "
                               "P0 Table 8); images are adapted to the evaluation model's "
                               "input. None: data.dataset. An import path to a dataset "
                               "function works as for data.dataset.",
    "generation.NAME.sample_fraction": "Per-class fraction of the training images the "
                                       "source trains on (P0's 1/10/30% of the samples), "
                                       "in (0, 1], seeded by data.split_seed.",
    "generation.NAME.class_fraction": "Fraction of the classes the source trains on, with "
                                      "all their images, relabelled 0..k-1 (the head gets "
                                      "k outputs), in (0, 1].",
    "generation.NAME.half": "'a' or 'b': a stratified half of the source's training images "
                            "(P1's CIFAR-10a/10b); '': all of them.",
    "generation.NAME.labelled_fraction": "Semi-supervision: the per-class fraction of the "
                                         "training images that keep their label (P0's "
                                         "S4L: 10%), in (0, 1].",
    "generation.NAME.rotations": "Rotation tasks: 'one' random multiple of 90 degrees per "
                                 "image and step, or 'all' four rotations of every image.",
    "generation.NAME.augment": "False: no on-device pad-crop or flip for this source's "
                               "training images (P0's shuffled-label runs).",
    "generation.NAME.pad_crop": "The source's own on-device pad-crop (pixels). None: "
                                "data.pad_crop, or 0 for a streamed source of an in-memory "
                                "evaluation (cropped on the host already).",
    "generation.NAME.flip": "The source's own on-device random flips. None: data.flip, or "
                            "off for a streamed source of an in-memory evaluation.",
    "generation.NAME.color_jitter": "Colour jitter of the source's streamed training "
                                    "images (P0 App. A: the 1% ImageNet subsets). None: "
                                    "data.color_jitter; True is refused for an in-memory "
                                    "dataset.",
    "generation.NAME.optimizer": "The source's optimizer (P1's cross-optimizer tickets); "
                                 "train.momentum and train.nesterov apply to 'momentum'. "
                                 "None: train.optimizer.",
    "generation.NAME.learning_rate": "The source's base learning rate, > 0. None: "
                                     "train.learning_rate.",
    "generation.NAME.weight_decay": "The source's weight decay, >= 0. None: "
                                    "train.weight_decay.",
    "generation.NAME.batch_size": "The source's batch size. None: train.batch_size.",
    "generation.NAME.duration": "The source's training budget per level, a duration. "
                                "None: train.duration.",
    "generation.NAME.warmup": "The source's linear warmup, a duration. None: "
                              "train.warmup.",
    "generation.NAME.decay_at": "The source's step-schedule boundaries (durations); only "
                                "with train.schedule='step'. None: train.decay_at.",
    "generation.NAME.rewind": "The source's rewind point in its own units and budget: "
                              "'3ep' is three epochs of its data, '3.3%' of its own budget "
                              "(P0 App. B, Table 1). None: pruning.rewind.",
    "generation.NAME.evaluate_levels": "The levels at which this source's ticket is "
                                       "evaluated, as pruning.evaluate_levels. None: "
                                       "pruning.evaluate_levels.",
    "generation.NAME.branches": "The runs at this source's evaluated levels, as the "
                                "top-level branches key. None: branches.",
    "generation.NAME.schedule": "The source's pruning schedule ('iterative' or "
                                "'one_shot'). None: pruning.schedule.",
    "generation.NAME.strategy": "The source's strategy ('reset' or 'continue'). None: "
                                "pruning.strategy.",
    "generation.NAME.criterion": "The source's mask criterion. None: pruning.criterion.",
    "generation.NAME.mask1_action": "The source's mask-1 action; a non-default action "
                                    "needs a source whose runs are the evaluation's own. "
                                    "None: pruning.mask1_action.",
    "generation.NAME.mask0_action": "The source's mask-0 action, with the same condition. "
                                    "None: pruning.mask0_action.",
    # ---- supermask -------------------------------------------------------------------
    "supermask.logit_inits": "The learned_supermask branch (P4 Sec. 5.1): the common "
                             "initial value of the mask logits, one run per value, e.g. "
                             "(-1, 0, 1); it sets the learned mask's sparsity. Needs at "
                             "least one value when the branch runs.",
    "supermask.steps": "Training steps of each learned supermask (P4: 2000/2000/1000/800 "
                       "for FC/Conv-2/4/6).",
    "supermask.learning_rate": "SGD learning rate on the mask logits (P4: 100/100/50/20 "
                               "for FC/Conv-2/4/6).",
    "supermask.momentum": "SGD momentum on the mask logits (P4: 0.9), in [0, 1).",
    "supermask.batch_size": "Examples per step of the learned supermask.",
    "supermask.eval_every": "Steps (an integer, not a duration) between evaluations of "
                            "the learned mask; early stopping on validation loss as for "
                            "every run.",
    "supermask.eval_samples": "Bernoulli mask draws averaged at each evaluation (accuracy, "
                              "loss and the learned mask's density).",
    # ---- runtime ---------------------------------------------------------------------
    "runtime.log_every_seconds": "At most one progress line (level, step, speed, ETA) per "
                                 "this many seconds.",
    "runtime.steps_per_call": "Train steps per call of the compiled chunk (lax.scan); 0 "
                              "(auto): 1 for convolutional models on CPU, where XLA runs "
                              "convolutions in a loop slowly, 100 elsewhere. Never changes "
                              "a logged number.",
    "runtime.plot": "Write accuracy_vs_remaining.png into the workdir with the results: "
                    "redrawn at the end, and during a run at most once a minute.",
    "runtime.reader_threads": "Streamed datasets: JPEG-decoding threads on the host; 0: "
                              "one per core the process may use.",
    "runtime.fsdp": "Shard parameters, masks and optimizer state over the devices (FSDP) "
                    "instead of replicating them; like the device count, it can change "
                    "float rounding only.",
    "runtime.cpu_convolutions": "XLA:CPU's convolution library: 'ynnpack' (XLA's default) "
                                "or 'eigen' (faster for Conv-2/4/6, slower for ResNets). "
                                "Read only on CPU; float rounding only.",
    "runtime.lanes": "Independent runs (replicates, a ticket and its controls) trained "
                     "side by side as lanes of one program: 'auto' (as many as the "
                     "device's memory holds on an accelerator, 1 on CPU), a cap such as "
                     "'8', or '1' for one run after another. Float rounding only.",
    "runtime.compilation_cache": "JAX's persistent compilation cache, so that a run "
                                 "reads the XLA programs an earlier run compiled "
                                 "instead of compiling them again: 'auto' (one "
                                 "directory per user: $JAXTICKETS_CACHE_DIR/xla, else "
                                 "$XDG_CACHE_HOME/jaxtickets/xla, else "
                                 "~/.cache/jaxtickets/xla), 'off' (or '') for none, or a "
                                 "directory. JAX_COMPILATION_CACHE_DIR in the "
                                 "environment wins; an unwritable directory is a warning "
                                 "and the run goes on uncached. Never changes a result.",
}

# Section titles and introductions, by top-level group ('' : the top-level keys).
GROUP_TITLES = {
    "": "Experiment",
    "model": "model.*",
    "data": "data.*",
    "train": "train.*",
    "pruning": "pruning.*",
    "evaluation": "evaluation.*",
    "generation": "generation.* (ticket sources)",
    "supermask": "supermask.*",
    "runtime": "runtime.*",
}
GROUP_INTROS = {
    "": "Top-level keys: the seed, the number of replicates, and the runs at each "
        "evaluated level.",
    "model": "The network and how it is initialized and computed.",
    "data": "The evaluation's dataset, where it comes from, how it is split and "
            "augmented. A ticket source trains on these unless it sets its own.",
    "train": "The evaluation's training recipe (every level and every control trains with "
             "it). A ticket source may override part of it.",
    "pruning": "How masks are made level after level (the trajectory) and which levels "
               "get result rows and controls. A ticket source may override the trajectory "
               "keys and the evaluated levels.",
    "evaluation": "What the tickets are evaluated on (P0 Sec. 3.1: a ticket is generated "
                  "on one task and evaluated on another).",
    "generation": "A ticket is the mask and rewind weights of a *generation* run; it is "
                  "evaluated by training it on the evaluation task. `add_source(config, "
                  "NAME, **keys)` (jaxtickets.config_schema) adds the group "
                  "`generation.NAME` with the keys below; a source name uses letters, "
                  "digits and '_'. A key left `None` takes the evaluation's value. A "
                  "source whose task, data and recipe equal the evaluation's *is* the "
                  "evaluation: nothing is trained twice. Keys are written "
                  "`generation.NAME.<key>`; the defaults are `source_defaults()`'s.",
    "supermask": "The learned_supermask branch (P4 Sec. 5.1): a mask learned on the frozen "
                 "initialization by SGD on Bernoulli mask logits with a straight-through "
                 "gradient, at level 0. Every key here is refused away from its default "
                 "unless some trajectory runs that branch.",
}


# ---- keys and defaults ---------------------------------------------------------------

def _dotted(node: Any, prefix: str = "") -> list[str]:
    """The leaf keys of a ConfigDict as dotted names, in their order; an empty group
    (base_config()'s `generation`) is a key of its own."""
    import ml_collections

    out = []
    for key in node.keys():
        name = prefix + key
        value = node[key]
        if isinstance(value, ml_collections.ConfigDict) and len(value.keys()):
            out.extend(_dotted(value, name + "."))
        else:
            out.append(name)
    return out


def config_keys() -> list[str]:
    """Every key of base_config(), dotted, in its order."""
    from jaxtickets import config_schema

    return _dotted(config_schema.base_config())


def source_keys() -> list[str]:
    """Every key of a ticket source, as 'generation.NAME.<key>'."""
    from jaxtickets import config_schema

    return _dotted(config_schema.source_defaults(), SOURCE_PREFIX)


def all_keys() -> list[str]:
    return config_keys() + source_keys()


def missing_and_stale() -> tuple[list[str], list[str]]:
    """(keys without a description, descriptions of keys that do not exist)."""
    keys = all_keys()
    return ([k for k in keys if not DESCRIPTIONS.get(k, "").strip()],
            sorted(set(DESCRIPTIONS) - set(keys)))


def _value_at(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = config[part]
    return config


def render_value(value: Any) -> str:
    """A default as a Python literal: strings and tuples as repr() writes them, an empty
    group as {}."""
    import ml_collections

    if isinstance(value, ml_collections.ConfigDict):
        return repr(value.to_dict())
    if isinstance(value, list):
        value = tuple(value)
    return repr(value)


def cell(text: str) -> str:
    """`text` fit for one Markdown table cell: '|' escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: str) -> str:
    """`text` as inline code in a table cell. A '|' inside a code span would end the
    cell in GitHub's tables and keep its escaping backslash in Python-Markdown's, so such
    text is written as HTML with the pipe as an entity, which both render alike."""
    text = " ".join(str(text).split())
    if "|" in text or "`" in text:
        escaped = html.escape(text, quote=False).replace("|", "&#124;").replace("`", "&#96;")
        return f"<code>{escaped}</code>"
    return f"`{text}`"


# ---- choices read from the code -------------------------------------------------------

def _names(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _choice_sources() -> dict[str, Callable[[], tuple[str, ...]]]:
    """Key -> the allowed values, read from the registries and constants that validate
    checks them against."""
    from jaxtickets import branches, config_schema, tasks
    from jaxtickets.data.datasets import NORMALIZE_MODES
    from jaxtickets.data.selections import HALVES
    from jaxtickets.models import model_names
    from jaxtickets.models.initializers import bn_init_names, init_names
    from jaxtickets.sparsity.actions import mask0_names, mask1_names
    from jaxtickets.sparsity.criteria import CRITERIA
    from jaxtickets.training import freezing
    from jaxtickets.training.optimizers import OPTIMIZERS
    from jaxtickets.training.schedules import SCHEDULES
    from jaxtickets.training.steps import COMPUTE_DTYPES
    from jaxtickets.training.xla_cpu import CPU_CONVOLUTIONS

    def branch_names():
        return _names(branches.names()) + _names(_branch_families())

    def scratch_capable():
        return tuple(b.name for b in branches.registered() if b.can_train_from_scratch)

    trajectory = {
        "schedule": lambda: _names(config_schema.PRUNING_SCHEDULES),
        "strategy": lambda: _names(config_schema.STRATEGIES),
        "criterion": lambda: _names(CRITERIA.names()),
        "mask1_action": lambda: _names(mask1_names()),
        "mask0_action": lambda: _names(mask0_names()),
    }
    out = {
        "branches": branch_names,
        "model.name": lambda: _names(model_names()),
        "model.compute_dtype": lambda: _names(COMPUTE_DTYPES),
        "model.init": lambda: _names(init_names()),
        "model.bn_init": lambda: _names(bn_init_names()),
        "data.dataset": lambda: _names(config_schema.DATASETS),
        "data.source": lambda: _names(config_schema.SOURCES),
        "data.half": lambda: _names(HALVES),
        "data.normalize": lambda: _names(NORMALIZE_MODES),
        "train.optimizer": lambda: _names(OPTIMIZERS),
        "train.schedule": lambda: _names(SCHEDULES),
        "train.freeze": lambda: _names(freezing.GROUPS + (freezing.ALL,)),
        "pruning.method": lambda: _names(config_schema.PRUNING_METHODS),
        "pruning.controls_from_scratch": scratch_capable,
        "evaluation.task": lambda: _names(tasks.names()),
        "runtime.cpu_convolutions": lambda: _names(CPU_CONVOLUTIONS),
        SOURCE_PREFIX + "task": lambda: _names(tasks.names()),
        SOURCE_PREFIX + "dataset": lambda: _names(config_schema.DATASETS),
        SOURCE_PREFIX + "half": lambda: _names(HALVES),
        SOURCE_PREFIX + "rotations": lambda: _names(tasks.ROTATIONS),
        SOURCE_PREFIX + "optimizer": lambda: _names(OPTIMIZERS),
        SOURCE_PREFIX + "branches": branch_names,
    }
    for key, names in trajectory.items():
        out[f"pruning.{key}"] = names
        out[SOURCE_PREFIX + key] = names
    return out


def choices() -> dict[str, tuple[str, ...]]:
    """Key -> its allowed values, as the code holds them now."""
    return {key: names() for key, names in _choice_sources().items()}


def _branch_families() -> tuple[str, ...]:
    """The parametrized branch families ('noise_C with C > 0, e.g. noise_0.5')."""
    from jaxtickets import branches

    return tuple(getattr(branches, "_FAMILIES", {}))


def read_only_when() -> dict[str, str]:
    """Key -> the setting without which it is refused away from its default, for the
    keys the code lists by name (optimizers', schedules' and tasks' own keys, the
    streamed-only keys)."""
    from jaxtickets import config_schema, tasks
    from jaxtickets.data.datasets import STREAMED_CLASSES
    from jaxtickets.training.optimizers import OPTIMIZER_KEYS
    from jaxtickets.training.schedules import SCHEDULE_KEYS

    out: dict[str, str] = {}
    for name, keys in OPTIMIZER_KEYS.items():
        for key in keys:
            out[f"train.{key}"] = (f"Read only when train.optimizer (or a source's "
                                   f"optimizer) is '{name}'.")
    for name, keys in SCHEDULE_KEYS.items():
        for key in keys:
            out[f"train.{key}"] = f"Read only when train.schedule='{name}'."
    streamed = ", ".join(STREAMED_CLASSES)
    for key in config_schema.STREAMED_ONLY_KEYS:
        out[key] = f"Read only when some training split is streamed ({streamed})."
    fields = {field for kind in tasks.kinds() for field in kind.source_keys}
    for field in sorted(fields):
        readers = [k.name for k in tasks.kinds() if field in k.source_keys]
        out[SOURCE_PREFIX + field] = (f"Read only by the task{'s' * (len(readers) > 1)} "
                                      f"{', '.join(readers)}.")
    return out


# ---- the page ---------------------------------------------------------------------------

def _choice_text(values: tuple[str, ...]) -> str:
    return ", ".join("`''`" if v == "" else code(v) for v in values)


def plain(text: str) -> str:
    """Plain `text` as Markdown: '*', '<' and '>' outside `code spans` are escaped, so
    'jpeg_*/offsets_*' or 'level_LL/<branch>/' show as written."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else
                   part.replace("*", "\\*").replace("<", "&lt;").replace(">", "&gt;")
                   for part in parts)


def _meaning(key: str, allowed: dict[str, tuple[str, ...]], only: dict[str, str]) -> str:
    text = plain(DESCRIPTIONS.get(key, "").strip()) or "*(not yet described)*"
    if key in allowed:
        text += f" Choices: {_choice_text(allowed[key])}."
    if key in only:
        text += f" {plain(only[key])}"
    return cell(text)


def _table(keys: list[str], defaults: Any, strip: str, allowed, only) -> list[str]:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key in keys:
        default = render_value(_value_at(defaults, key[len(strip):]))
        lines.append(f"| `{key}` | {code(default)} | {_meaning(key, allowed, only)} |")
    return lines


def _ordered(keys: list[str]) -> list[str]:
    """`keys` in the order of DESCRIPTIONS (base_config()'s, related keys together),
    keys it lacks last, alphabetically (ConfigDict lists its keys sorted)."""
    rank = {key: i for i, key in enumerate(DESCRIPTIONS)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


def _groups(config: Any) -> list[tuple[str, list[str]]]:
    """(group, its dotted keys): the top-level keys, then the groups in GROUP_TITLES'
    order, then any other group."""
    import ml_collections

    top, groups = [], {}
    for key in config.keys():
        value = config[key]
        if isinstance(value, ml_collections.ConfigDict) and key != "generation":
            groups[key] = _ordered(_dotted(value, key + "."))
        elif key == "generation":
            groups[key] = [key]
        else:
            top.append(key)
    order = [g for g in GROUP_TITLES if g in groups] + sorted(
        g for g in groups if g not in GROUP_TITLES)
    return [("", _ordered(top))] + [(g, groups[g]) for g in order]


def _intro(runtime_key: str) -> list[str]:
    from jaxtickets.durations import UNITS

    units = ", ".join(f"`{unit}` {name}" for unit, name in UNITS.items())
    papers = [f"* **{tag}**: {text}." for tag, text in PAPERS.items()]
    return [
        "# Configuration reference",
        "",
        "Every key of an experiment config, its default and what it does. This page is "
        "generated from the code (`python -m jaxtickets.config_reference OUT.md`, "
        "`jaxtickets/config_reference.py`): the keys and defaults are those of "
        "`base_config()` and `source_defaults()` in `jaxtickets/config_schema.py`, and the "
        "lists of choices are read from the registries and constants that the checks use. "
        "Regenerate it rather than editing it.",
        "",
        "## Setting keys",
        "",
        "* A config file (`configs/*.py`) defines `get_config(arg)`, which starts from "
        "`base_config()` and changes values; run it with "
        "`python -m jaxtickets.main --config=FILE[:ARG] --workdir=DIR`. The text after "
        "the colon is the config's own argument: every config in `configs/` accepts "
        "`smoke` (`--config=configs/mnist_lenet.py:smoke`, a run of well under a minute "
        "on a CPU), many accept more (`configs/cifar10_conv.py:conv6,smoke`). "
        "`--config=FILE[:ARG] --helpconfig` prints the arguments FILE accepts and every "
        "key it sets away from the defaults below.",
        "* `--config.KEY=VALUE` overrides any key: `--config.train.duration=3ep`, "
        "`--config.pruning.levels=7`, `--config.data.flip=True`. List keys take items "
        "separated by commas (`--config.branches=ticket,random_reinit`, "
        "`--config.pruning.evaluate_levels=0,3,6`); a list of durations is given as "
        "repeated flags (`--config.train.decay_at=80ep --config.train.decay_at=120ep`).",
        "* Before any compute, a run refuses an unknown key (on the command line with the "
        "closest known keys suggested), a value of the wrong type or out of range, and a "
        "key set away from its default where the chosen settings never read it (e.g. "
        "`pruning.rate` under layer-wise pruning): one `error:` line naming the key, exit "
        "code 2.",
        f"* Durations are strings with one unit: {units} (of the run's own budget), e.g. "
        "`'2500st'`, `'3ep'`, `'3840000ex'`, `'3.3%'`. They are converted to steps once, "
        "with the run's own data size and batch; a training budget cannot be a "
        "percentage.",
        f"* `{runtime_key}.*` keys never change results (at most float rounding, as the "
        "device count can): they are left out of the experiment's identity (the config "
        "hash in `config.json`), so changing them resumes the same workdir. Every other "
        "key is part of the identity.",
        "",
        "Papers cited:",
        "",
        *papers,
        "",
    ]


def _registered() -> list[str]:
    """The registered names the config keys choose from."""
    from jaxtickets import branches, config_schema, tasks
    from jaxtickets.data.datasets import NUM_CLASSES, STREAMED_CLASSES
    from jaxtickets.models import model_names
    from jaxtickets.models.initializers import bn_init_names, init_names
    from jaxtickets.sparsity.actions import mask0_names, mask1_names
    from jaxtickets.sparsity.criteria import CRITERIA, NEEDS_INIT
    from jaxtickets.training.optimizers import OPTIMIZERS
    from jaxtickets.training.schedules import SCHEDULES

    def listed(title: str, key: str, values: Iterable[str]) -> list[str]:
        return [f"* **{title}** ({key}): {_choice_text(_names(values))}."]

    lines = ["## Registered names", "",
             "What the keys above choose from, read from the registries when this page is "
             "made (docs/extending.md shows how to add to them).", ""]
    lines += listed("Models", "`model.name`", model_names())
    lines += listed("Kernel initializers", "`model.init`", init_names())
    lines += listed("BatchNorm initializers", "`model.bn_init`", bn_init_names())
    for title, classes in (("In-memory datasets", NUM_CLASSES),
                           ("Streamed datasets", STREAMED_CLASSES)):
        counts = ", ".join(f"`{name}` ({n} classes)" for name, n in classes.items())
        lines += [f"* **{title}** (`data.dataset`, a source's `dataset`): {counts}."]
    lines += listed("Optimizers", "`train.optimizer`, a source's `optimizer`", OPTIMIZERS)
    lines += listed("Learning-rate schedules", "`train.schedule`", SCHEDULES)
    lines += listed("Pruning methods", "`pruning.method`", config_schema.PRUNING_METHODS)
    lines += listed("Mask criteria", "`pruning.criterion`, a source's `criterion`",
                    CRITERIA.names())
    lines += [f"  Criteria that read the initial weights: "
              f"{_choice_text(tuple(n for n in CRITERIA.names() if n in NEEDS_INIT))}."]
    lines += listed("Mask-1 actions", "`pruning.mask1_action`", mask1_names())
    lines += listed("Mask-0 actions", "`pruning.mask0_action`", mask0_names())
    lines += ["", "### Tasks (`evaluation.task`, `generation.NAME.task`)", "",
              "| task | source keys only it (and the others listed) reads |", "|---|---|"]
    for kind in tasks.kinds():
        keys = ", ".join(f"`{k}`" for k in kind.source_keys) or "-"
        lines.append(f"| `{kind.name}` | {keys} |")
    lines += ["", "### Branches (`branches`, `generation.NAME.branches`)", "",
              f"`{branches.TICKET}` is the level's ticket itself; every other name is a "
              "control trained or evaluated beside it. Random controls are drawn "
              "`pruning.control_draws` times per level; those marked *from scratch* may "
              "be listed in `pruning.controls_from_scratch`.", "",
              "| branch | what it is | random | from scratch |", "|---|---|---|---|"]
    for branch in branches.registered():
        lines.append(f"| `{branch.name}` | {cell(plain(branch.description or '-'))} | "
                     f"{'yes' if branch.random else 'no'} | "
                     f"{'yes' if branch.can_train_from_scratch else 'no'} |")
    for family in _branch_families():
        lines.append(f"| {cell(plain(family))} | a family of branches named by a parameter | "
                     "- | - |")
    return lines


def markdown() -> str:
    """The configuration reference page, from the code as it is now."""
    from jaxtickets import config_schema

    config = config_schema.base_config()
    source = config_schema.source_defaults()
    allowed, only = choices(), read_only_when()
    lines = _intro(config_schema.RUNTIME_KEY)
    for group, keys in _groups(config):
        lines += [f"## {GROUP_TITLES.get(group, group + '.*')}", ""]
        intro = GROUP_INTROS.get(group, "")
        if group == config_schema.RUNTIME_KEY:
            intro = ("Settings that change speed, memory or logging and never the "
                     "results (at most float rounding); they are not part of the "
                     "experiment's identity, so a workdir resumes under new values.")
        if intro:
            lines += [intro, ""]
        lines += _table(keys, config, "", allowed, only)
        if group == "generation":
            lines += ["", "Keys of one source, `generation.NAME.*`:", ""]
            lines += _table(_ordered(_dotted(source, SOURCE_PREFIX)), source,
                            SOURCE_PREFIX, allowed, only)
        lines.append("")
    lines += _registered()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or any(a in ("-h", "--help") for a in argv):
        print("usage: python -m jaxtickets.config_reference [OUT.md]", file=sys.stderr)
        return 2
    page = markdown()
    if argv:
        path = pathlib.Path(argv[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
