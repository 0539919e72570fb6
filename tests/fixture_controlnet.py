"""A tiny random ControlNet for the tiny SD1.5 UNet, as ComfyUI's own ControlNet control object."""
import torch


def tiny_controlnet(model, seed=0):
    """comfy.controlnet.ControlNet around a cldm ControlNet shaped like `model`'s UNet, random weights
    (zero convolutions included, so the hint changes the UNet's output)."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops
    config = {k: v for k, v in model.model.model_config.unet_config.items() if k != "disable_unet_model_creation"}
    operations = getattr(comfy.ops, "disable_weight_init", comfy.ops)
    with torch.inference_mode(False):
        network = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=operations, **config)
        generator = torch.Generator().manual_seed(seed)
        network.load_state_dict({k: torch.randn(v.shape, generator=generator) * 0.05
                                 for k, v in network.state_dict().items()})
    return comfy.controlnet.ControlNet(network.eval(), load_device=torch.device("cpu"))
