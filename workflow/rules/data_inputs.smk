# The input functions and params of the syn_set rule (data.smk).


def checks_zca(method):
    """Whether syn_set checks the set's ZCA statistics: sets given by the user for a
    dataset with zca. Reference sets are built from its whitened train split already, and
    the heuristic can misfire on them (k-means centroids are smoother than single images).
    """
    zca = config["datasets"][method["dataset"]].get("zca")
    return bool(zca) and not method["images"].startswith("reference:")


def syn_set_inputs(wildcards):
    method = PLAN.method(wildcards.method)
    dataset = dataset_files(method["dataset"])
    inputs = {
        "images": PLAN.syn_images_input(wildcards.method),
        "meta": dataset["meta"],
    }
    if checks_zca(method):
        # the ZCA fit, to check that the set is in ZCA space
        inputs["data"] = dataset["data"]
    if Path(inputs["images"]).is_dir():
        # image_files imports torch: only for a folder set, and only for its own job
        from ddrank_steps.data.image_files import list_images

        # every image of a folder set, so editing one reruns the import; the folder
        # itself is a param (syn_images): the cache key of a training job on the set
        # hashes the content of every input no job makes, which a folder has none of
        folder = Path(inputs.pop("images"))
        inputs["image_files"] = [str(p) for p in list_images(folder)]
    for key in ("labels", "soft_labels"):
        if method[key]:
            inputs[key] = method[key]
    if isinstance(method["lr"], str):
        inputs["lr"] = method["lr"]
    return inputs


def syn_images(wildcards):
    """The set's file or folder, as the method gives it (or the reference set)."""
    return PLAN.syn_images_input(wildcards.method)


def syn_set_args(wildcards, input):
    method = PLAN.method(wildcards.method)
    args = ["--ipc", str(method["ipc"])]
    if checks_zca(method):
        args += ["--data", shlex.quote(input.data)]
    elif config["datasets"][method["dataset"]].get("zca"):
        args.append("--reference-set")  # only with zca: other params must not change
    if method["labels"]:
        args += ["--labels", shlex.quote(input.labels)]
    if method["soft_labels"]:
        args += ["--soft-labels", shlex.quote(input.soft_labels)]
    if method["lr"] is not None:
        lr = input.lr if isinstance(method["lr"], str) else repr(method["lr"])
        args += ["--lr", shlex.quote(lr)]
    return " ".join(args)
