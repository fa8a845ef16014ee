"""Every name and number the package chooses from, defined once.

Plain Python with no imports, so the CLI can read its choice lists here without
loading Keras. Paper facts with sources live in `simulations/data/`; these are
the package's own choices and the conventions of the formats it reads.
"""

KERAS_PACKAGE = "alexnet_keras"  # the prefix of every registered class ("alexnet_keras>AlexNet")

# --- models ------------------------------------------------------------------
VARIANTS = ("2012", "owt")
INPUT_SIZE = {"2012": 227, "owt": 224}  # 227: conv1 gives 55x55 ([P]'s "224" needs 2 px of padding)
MIN_INPUT = {"2012": 67, "owt": 63}  # smallest square input whose pool5 map is at least 1x1
DROPOUT_MODES = ("paper", "inverted")
DEFAULT_DROPOUT = {"2012": "paper", "owt": "inverted"}
# The bias of conv2/4/5 and fc6/7 (torch: its own). "cuda-convnet" also draws conv3-5 with std 0.03.
INITS = {"paper": 1.0, "caffe": 0.1, "torch": None, "cuda-convnet": 1.0}
INIT_SCHEMES = tuple(INITS)
DEFAULT_INIT = {"2012": "paper", "owt": "torch"}
DEFAULT_PREPROCESSING = {"2012": "paper", "owt": "torchvision"}
TOWER_IMPLS = ("split", "grouped")
LRN_CONVENTIONS = ("paper", "cuda-convnet")
CONV1_ORDERS = ("paper", "cuda-convnet")  # conv1 -> ReLU -> LRN -> pool, or [CC]'s conv1 -> LRN -> pool -> ReLU
FIDELITIES = ("paper", "cuda-convnet")  # [P]'s printed network, or every certain difference of [CC] model 145
# Ablation switches of the 2012 net (AlexNet's lrn, pool, activation, towers, remove_conv).
OVERLAPPING_POOL = (3, 2)  # [P] §3.4: (window, stride) of pool1, pool2, pool5; (2, 2) is its non-overlapping comparison
ACTIVATIONS = ("relu", "tanh")  # [P] §3.1 compares ReLU with tanh
TOWER_COUNTS = (1, 2)  # [P] §3.2: the one-GPU net (half the kernels but conv5 and fc) or the two-GPU net
REMOVABLE_CONVS = ("conv3", "conv4", "conv5")  # [P] §7: removing a middle conv layer; which one is ours

# --- training ------------------------------------------------------------------
# multi-worker (TF) is refused in one line: Keras 3 fit cannot run it (keras-team/keras#20585); see training.multihost
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
PARALLEL_MODES = ("data", "towers")  # --parallel: replicas over devices, or the paper's model split
# --precision: a Keras dtype policy for the model; variables (and checkpoints) stay float32 under each
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MEAN_MODES = ("pixel", "image")  # [P] §2 subtracts the mean image; the mean pixel stays the default
GTX580_MEMORY_BYTES = 3 * 2**30  # [P] §5: two GTX 580 3GB (simulations/data/gtx580.csv)

# --- fine-tuning and folders of class folders ----------------------------------------
FINETUNE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")  # kept from the source; fc8 is new
FREEZE_MODES = ("none", "features")  # and "up-to:LAYER" (conv1 to LAYER); features: conv1 to conv5
# 1/10 of the paper's from-scratch 0.01, as Caffe's fine-tuning example (finetune_flickr_style,
# base_lr 0.001): pretrained layers move gently while the new head still learns.
FINETUNE_LR = 0.001
DEFAULT_VAL_SPLIT = 0.1  # held out per class when a folder has no train/ and val/
SPLIT_FILE = "split.json"  # the auto split, recorded in the run directory

# --- ImageNet and the competition ------------------------------------------------
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what the data loaders read
IMAGENET_VAL_PREFIX = "ILSVRC2012_val_"
IMAGENET_CLASSES = 1000
IMAGENET_VAL_IMAGES = 50_000
YEARS = (2010, 2011, 2012)
