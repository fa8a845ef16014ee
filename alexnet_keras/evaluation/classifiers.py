"""What a model to be scored must be, and what it says about itself: classes,
preprocessing spec and the WordNet id of each output."""

from ..constants import IMAGENET_CLASSES
from ..errors import UserError
from ..imagenet import imagenet_wnids
from ..preprocessing import get_spec


def check_classifier(model, what=None):
    """`UserError` unless `model` maps square RGB images `(None, H, H, 3)` to scores `(None, classes >= 2)`.

    AlexNet is; a plain Keras image classifier is too (it gets the paper's
    preprocessing at its input size). Anything else cannot be scored here.
    """
    what = what or getattr(model, "name", "the model")
    try:
        inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError, TypeError):  # unbuilt, or several inputs/outputs
        inputs = outputs = None
    image_in = (
        inputs is not None
        and len(inputs) == 4
        and inputs[3] == 3
        and isinstance(inputs[1], int)
        and inputs[1] == inputs[2]
    )
    scores_out = outputs is not None and len(outputs) == 2 and isinstance(outputs[1], int) and outputs[1] >= 2
    if not (image_in and scores_out):
        raise UserError(
            f"{what} is not an image classifier that can be scored: it maps {inputs} to {outputs}, "
            "not square RGB images (None, H, H, 3) to class scores (None, classes); give an AlexNet .keras file"
        )


def model_classes(model):
    """Number of outputs of a classifier."""
    return int(model.output_shape[-1])


def model_spec(model):
    """The model's preprocessing spec as a plain dict; plain Keras models get the paper's at their input size."""
    spec = getattr(model, "preprocessing", None)
    if spec is None:
        spec = get_spec("paper")
        spec["input_size"] = int(model.input_shape[1])
    return spec


def model_wnids(model):
    """The wnid of each output: `model.class_wnids`, else ImageNet's order for 1000 outputs, else None."""
    wnids = getattr(model, "class_wnids", None)
    if wnids is not None:
        return [str(w) for w in wnids]
    if model_classes(model) == IMAGENET_CLASSES:
        return imagenet_wnids()
    return None
