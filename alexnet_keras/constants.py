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

# --- training ------------------------------------------------------------------
STRATEGIES = ("auto", "default", "mirrored")
MEAN_MODES = ("pixel", "image")  # [P] §2 subtracts the mean image; the mean pixel stays the default
GTX580_MEMORY_BYTES = 3 * 2**30  # [P] §5: two GTX 580 3GB (simulations/data/gtx580.csv)

# --- ImageNet and the competition ------------------------------------------------
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what the data loaders read
IMAGENET_VAL_PREFIX = "ILSVRC2012_val_"
IMAGENET_CLASSES = 1000
IMAGENET_VAL_IMAGES = 50_000
YEARS = (2010, 2011, 2012)
