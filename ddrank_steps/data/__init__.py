"""Data: the real datasets' on-disk formats (`datasets`), a prepared dataset's store
(`dataset_store`, written by prepare_dataset) and how training reads it and set files back
(`training_inputs`), image files and their streaming (`image_files`, `streaming`),
lossless PNG folders (`png_folder`), set files (`set_files`), the import of a user's
distilled set (`syn_import`), coreset selection for the reference sets (`coresets`) and
ZCA whitening (`zca`).

A library layer: may import runtime and the core modules only.
"""
