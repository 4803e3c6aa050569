"""Remote code shipped with the tiny Molmo-shaped checkpoint (support.families.molmo): the classes its
config.json / processor settings `auto_map` name (config_molmo, modeling_molmo, image_preprocessing_molmo,
preprocessing_molmo, as allenai/Molmo-7B-D-0924 names its files)."""
