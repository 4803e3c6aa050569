"""Phi3VConfig: Phi-3's text settings plus the image embedding's (`embd_layer`, `img_processor`), under
model_type phi3_v, as microsoft/Phi-3.5-vision-instruct's configuration_phi3_v.py declares them."""

from transformers import Phi3Config


class Phi3VConfig(Phi3Config):
    model_type = "phi3_v"

    def __init__(self, embd_layer=None, img_processor=None, **kwargs):
        self.embd_layer = embd_layer or {"embedding_cls": "image", "projection_cls": "mlp"}
        #: the CLIP vision tower's settings and the size of its image features
        self.img_processor = img_processor or {"name": "clip_vision_model", "image_dim_out": 16}
        super().__init__(**kwargs)
