"""The shipped loaders: importing this package registers each with ModelLoaderRegistry.

=====================  =========================================  =====================================
module                 loads                                      registered for (base, type, format)
=====================  =========================================  =====================================
diffusers_pipeline     pipeline folders, whole or one submodel    sd-1/sd-2/sdxl/sdxl-refiner, main, diffusers
single_file            main checkpoints, via the convert cache    sd-1/sd-2/sdxl/sdxl-refiner, main, checkpoint
vae                    VAE checkpoints, via the convert cache     sd-1/sd-2/sdxl/sdxl-refiner, vae, checkpoint
controlnet             ControlNet checkpoints, convert cache      sd-1/sd-2/sdxl, controlnet, checkpoint
generic_diffusers      VAE, ControlNet, T2I adapter, CLIP vision  any, {vae,controlnet,t2i_adapter,clip_vision}, diffusers
raw                    LoRA/LyCORIS, textual inversion: dicts     any, lora, {lycoris,diffusers}; any, embedding, *
ip_adapter             {"image_proj", "ip_adapter"} state dicts   any, ip_adapter, {checkpoint,invokeai}
=====================  =========================================  =====================================

ONNX pipelines have no loader (NotImplementedException).
"""

from reconciler.load.model_loaders import (  # noqa: F401 - imported to register
    controlnet,
    diffusers_pipeline,
    generic_diffusers,
    ip_adapter,
    raw,
    single_file,
    vae,
)
