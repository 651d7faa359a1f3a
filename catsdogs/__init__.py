"""catsdogs: the helper package of the Linformer-ViT cats-vs-dogs tutorial.

The notebooks hold the code a learner came to see (split, model build, training loop, submission);
this package holds the plumbing they call.
"""
from . import colab
from .config import Workspace, data_dir, is_small, profile, workspace
from .data import CachedPhotos, ImageCache, build_cache, train_transform
from .device import Device
from .demo import make_demo_archive
from .download import DatasetError, prepare_dataset
from .images import CLASSES, UnreadableImage, image_id, label_from_name, list_images, list_labelled, read_rgb
from .model import ModelConfig, build_model, count_parameters
from .predict import evaluate, load_model, log_loss, predict_folder, predict_probs
from .submission import InvalidSubmission, validate_submission, write_submission

__version__ = "0.1.0"
