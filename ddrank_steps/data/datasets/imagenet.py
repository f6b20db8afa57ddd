"""ImageNet-1K and its 10-class subsets (ImageNette, ImageWoof, ImageMeow, ImageSquawk,
ImageFruit, ImageYellow) from class-folder trees.

Layout (torchvision's `ImageNet(root)` leaves it so; so does ILSVRC's valprep.sh):

    {root}/train/<wnid>/*.JPEG
    {root}/val/<wnid>/*.JPEG

ImageNet1K's classes are the sorted wnids of train/ (ImageFolder's ids, which are the
usual ImageNet-1K indices). A subset is the reference's list of ImageNet-1K indices, in
its order, relabelled 0..9. We look its classes up by wnid, so the same code reads a
full 1000-class tree and a standalone 10-class tree whose folders are those wnids
(fast.ai's imagenette2 / imagewoof2 are such trees). The reference builds a `Subset`
of the full ImageFolder instead; the images and labels are the same.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from ddrank_steps.data.datasets import Facts, RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import loader_root, require_folder, root_fix
from ddrank_steps.data.datasets.trees import class_tree_split, find_root, image_size
from ddrank_steps.data.image_files import class_folders
from ddrank_steps.errors import ConfigError, InputError

log = logging.getLogger("ddrank.datasets.imagenet")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
SUBSET_SIZE = 128  # the reference's default im_size for the subsets
FULL_SIZE = 224

# The reference's subsets (ddranking utils/data.py): ImageNet-1K indices, in label order.
SUBSETS: dict[str, list[int]] = {
    "ImageNette": [0, 217, 482, 491, 497, 566, 569, 571, 574, 701],
    "ImageWoof": [193, 182, 258, 162, 155, 167, 159, 273, 207, 229],
    "ImageMeow": [281, 282, 283, 284, 285, 291, 292, 290, 289, 287],
    "ImageSquawk": [84, 130, 88, 144, 145, 22, 96, 9, 100, 89],
    "ImageFruit": [953, 954, 949, 950, 951, 957, 952, 945, 943, 948],
    "ImageYellow": [309, 986, 954, 951, 987, 779, 599, 291, 72, 11],
}

# ImageNet-1K index -> (wnid, name) for every index above. An index is the position of
# the wnid among the 1000 sorted wnids (checked against two published class-index files).
WNIDS: dict[int, tuple[str, str]] = {
    0: ("n01440764", "tench"),
    9: ("n01518878", "ostrich"),
    11: ("n01531178", "goldfinch"),
    22: ("n01614925", "bald eagle"),
    72: ("n01773157", "black and gold garden spider"),
    84: ("n01806143", "peacock"),
    88: ("n01818515", "macaw"),
    89: ("n01819313", "sulphur-crested cockatoo"),
    96: ("n01843383", "toucan"),
    100: ("n01860187", "black swan"),
    130: ("n02007558", "flamingo"),
    144: ("n02051845", "pelican"),
    145: ("n02056570", "king penguin"),
    155: ("n02086240", "Shih-Tzu"),
    159: ("n02087394", "Rhodesian ridgeback"),
    162: ("n02088364", "beagle"),
    167: ("n02089973", "English foxhound"),
    182: ("n02093754", "Border terrier"),
    193: ("n02096294", "Australian terrier"),
    207: ("n02099601", "golden retriever"),
    217: ("n02102040", "English springer"),
    229: ("n02105641", "Old English sheepdog"),
    258: ("n02111889", "Samoyed"),
    273: ("n02115641", "dingo"),
    281: ("n02123045", "tabby"),
    282: ("n02123159", "tiger cat"),
    283: ("n02123394", "Persian cat"),
    284: ("n02123597", "Siamese cat"),
    285: ("n02124075", "Egyptian cat"),
    287: ("n02127052", "lynx"),
    289: ("n02128757", "snow leopard"),
    290: ("n02128925", "jaguar"),
    291: ("n02129165", "lion"),
    292: ("n02129604", "tiger"),
    309: ("n02206856", "bee"),
    482: ("n02979186", "cassette player"),
    491: ("n03000684", "chain saw"),
    497: ("n03028079", "church"),
    566: ("n03394916", "French horn"),
    569: ("n03417042", "garbage truck"),
    571: ("n03425413", "gas pump"),
    574: ("n03445777", "golf ball"),
    599: ("n03530642", "honeycomb"),
    701: ("n03888257", "parachute"),
    779: ("n04146614", "school bus"),
    943: ("n07718472", "cucumber"),
    945: ("n07720875", "bell pepper"),
    948: ("n07742313", "Granny Smith"),
    949: ("n07745940", "strawberry"),
    950: ("n07747607", "orange"),
    951: ("n07749582", "lemon"),
    952: ("n07753113", "fig"),
    953: ("n07753275", "pineapple"),
    954: ("n07753592", "banana"),
    957: ("n07768694", "pomegranate"),
    986: ("n12057211", "yellow lady's slipper"),
    987: ("n12144580", "corn"),
}

# fast.ai's standalone trees (full-size images); the other subsets have none.
# Every source this module reads: the six subsets and the full ImageNet-1K.
IMAGENET_SOURCES = frozenset({*SUBSETS, "ImageNet1K"})

DOWNLOADS = {
    "ImageNette": ("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz", "imagenette2"),
    "ImageWoof": ("https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2.tgz", "imagewoof2"),
}


def subset_wnids(subset: str) -> list[str]:
    return [WNIDS[i][0] for i in SUBSETS[subset]]


def layout(root, source: str) -> str:
    if source == "ImageNet1K":
        return (
            f"expected {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (torchvision's "
            "ImageNet layout: val sorted into wnid folders)"
        )
    wnids = subset_wnids(source)
    return (
        f"expected {root}/train/<wnid>/… and {root}/val/<wnid>/… for the {source} wnids "
        f"{', '.join(wnids)} (a full ImageNet tree, or a 10-class tree of those folders)"
    )


def _fix(source: str) -> str:
    return root_fix(source, "that tree", download=source in DOWNLOADS)


def _download(root: Path, source: str) -> None:
    """Fetch and unpack fast.ai's archive into `root`, unless a train/ is already there."""
    url, folder = DOWNLOADS[source]
    if not (root / folder / "train").is_dir() and not (root / "train").is_dir():
        from torchvision.datasets.utils import download_and_extract_archive

        log.info("downloading %s to %s", source, root)
        download_and_extract_archive(url, download_root=str(root))


def _root(settings: dict, source: str) -> Path:
    if settings.get("download") and source not in DOWNLOADS:
        raise ConfigError(
            f"datasets.<name>.download is not available for source {source} (ImageNet needs a "
            f"licence; only {sorted(DOWNLOADS)} have public archives); set download: false "
            "and root to your ImageNet tree"
        )
    root = loader_root(
        settings,
        source,
        partial(layout, source=source),
        _fix(source),
        default=f"data/{source.lower()}",
        fetch=partial(_download, source=source),
    )
    nested = (DOWNLOADS[source][1],) if source in DOWNLOADS else ()
    return find_root(root, "train", nested)


def _check_val_is_sorted(root: Path, source: str) -> None:
    val = root / "val"
    if val.is_dir() and not class_folders(val) and any(val.iterdir()):
        raise InputError(
            val,
            "folder",
            f"holds files but no <wnid>/ folders; {layout(root, source)}",
            "sort val into one folder per wnid (torchvision.datasets.ImageNet(root, "
            "split='val') does it from the devkit, as does ILSVRC's valprep.sh)",
        )


def subset_facts(source: str) -> Facts:
    """A subset's meta before preparing: its classes are fixed (ImageNet-1K's class
    count and names are its train/ folders, so it has none)."""
    wnids = tuple(subset_wnids(source))
    mean, std = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    return Facts(len(wnids), 3, 255.0, mean, std, wnids)


def load_subset(settings: dict, source: str) -> RawDataset:
    root = _root(settings, source)
    size = image_size(settings, SUBSET_SIZE, source)
    _check_val_is_sorted(root, source)
    wnids = subset_wnids(source)
    where, fix = layout(root, source), _fix(source)
    return RawDataset(
        name=source,
        classes=wnids,
        max_value=255.0,
        train=class_tree_split(root, root / "train", wnids, size, where, fix),
        test=class_tree_split(root, root / "val", wnids, size, where, fix),
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        notes={
            "folder": str(root),
            "format": "ImageNet class-folder tree",
            "imagenet_indices": SUBSETS[source],
            "class_names": [WNIDS[i][1] for i in SUBSETS[source]],
            "image_size": size,
        },
    )


def load_imagenet1k(settings: dict) -> RawDataset:
    source = "ImageNet1K"
    root = _root(settings, source)
    size = image_size(settings, FULL_SIZE, source)
    where, fix = layout(root, source), _fix(source)
    train_dir, val_dir = root / "train", root / "val"
    require_folder(train_dir, where, fix)
    classes = class_folders(train_dir)
    if not classes:
        raise InputError(train_dir, "folder", f"holds no class folders; {where}", fix)
    if len(classes) != 1000:
        log.warning("train/ has %d class folders; ImageNet-1K has 1000", len(classes))
    _check_val_is_sorted(root, source)
    require_folder(val_dir, where, fix)
    unknown = sorted(set(class_folders(val_dir)) - set(classes))
    if unknown:
        raise InputError(val_dir / unknown[0], "class folder", f"has no train folder; {where}", fix)
    return RawDataset(
        name=source,
        classes=classes,
        max_value=255.0,
        train=class_tree_split(root, train_dir, classes, size, where, fix),
        test=class_tree_split(root, val_dir, classes, size, where, fix),
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        notes={"folder": str(root), "format": "ImageNet class-folder tree", "image_size": size},
    )


def check_layout(settings: dict, source: str) -> None:
    """At plan time: root with its train/ and val/ folders (unless download: true, which
    fetches an ImageNette/ImageWoof archive in the prepare_dataset job)."""
    if settings.get("download") and source in DOWNLOADS:
        return
    root = _root(settings, source)  # a missing root or a refused download raise here
    for folder in ("train", "val"):
        require_folder(root / folder, layout(root, source), _fix(source))


def register() -> None:
    for source in SUBSETS:
        register_source(
            source,
            partial(load_subset, source=source),
            files=True,
            options=("image_size",),
            size=SUBSET_SIZE,
            check_layout=partial(check_layout, source=source),
            facts=subset_facts(source),
        )
    register_source(
        "ImageNet1K",
        load_imagenet1k,
        files=True,
        options=("image_size",),
        size=FULL_SIZE,
        check_layout=partial(check_layout, source="ImageNet1K"),
    )
