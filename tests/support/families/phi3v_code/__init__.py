"""Remote code shipped with the tiny Phi-3.5-vision-shaped checkpoint (support.families.phi): the config,
model, image processor and processor classes its config.json / processor_config.json `auto_map` name."""
