// The ComfyUI fake's recorded bodies: /system_stats, the node catalogue, a PNG, a traceback.

#include "sandbox/comfy_fake_impl.hpp"

namespace autopod::sandbox::comfy_fake {

// The /system_stats body recorded from ComfyUI 0.3.64 (CPU) in the transcript.
const json k_system_stats = json::parse(R"({"system": {"os": "posix", "ram_total": 25276510208,
  "ram_free": 24483700736, "comfyui_version": "0.3.64", "required_frontend_version": "1.27.10",
  "installed_templates_version": null, "required_templates_version": "0.1.95",
  "python_version": "3.11.2 (main, Apr 28 2025, 14:11:48) [GCC 12.2.0]", "pytorch_version": "1.13.0a0",
  "embedded_python": false, "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"]},
  "devices": [{"name": "cpu", "type": "cpu", "index": null, "vram_total": 25276510208,
  "vram_free": 24483700736, "torch_vram_total": 25276510208, "torch_vram_free": 24483700736}]})");
// Node schemas as /object_info gives them (EmptyImage and LoadImage as recorded; the others
// follow ComfyUI's nodes.py). LoadImage's option list is filled in from the input directory.
const json k_catalog = json::parse(R"json({
  "EmptyImage": {"input": {"required": {
      "width": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
      "height": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
      "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
      "color": ["INT", {"default": 0, "min": 0, "max": 16777215, "step": 1, "display": "color"}]}},
    "input_order": {"required": ["width", "height", "batch_size", "color"]},
    "output": ["IMAGE"], "output_is_list": [false], "output_name": ["IMAGE"], "name": "EmptyImage",
    "display_name": "EmptyImage", "description": "", "python_module": "nodes", "category": "image",
    "output_node": false},
  "LoadImage": {"input": {"required": {"image": [[], {"image_upload": true}]}},
    "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"],
    "output_is_list": [false, false], "output_name": ["IMAGE", "MASK"], "name": "LoadImage",
    "display_name": "Load Image", "description": "", "python_module": "nodes", "category": "image",
    "output_node": false},
  "ImageInvert": {"input": {"required": {"image": ["IMAGE"]}}, "input_order": {"required": ["image"]},
    "output": ["IMAGE"], "output_is_list": [false], "output_name": ["IMAGE"], "name": "ImageInvert",
    "display_name": "Invert Image", "description": "", "python_module": "nodes",
    "category": "image", "output_node": false},
  "SaveImage": {"input": {"required": {"images": ["IMAGE", {"tooltip": "The images to save."}],
      "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
      "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}},
    "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "SaveImage",
    "display_name": "Save Image", "description": "Saves the input images to your ComfyUI output directory.",
    "python_module": "nodes", "category": "image", "output_node": true},
  "PreviewImage": {"input": {"required": {"images": ["IMAGE"]},
      "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}},
    "input_order": {"required": ["images"], "hidden": ["prompt", "extra_pnginfo"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "PreviewImage",
    "display_name": "Preview Image", "description": "Saves the input images to your ComfyUI output directory.",
    "python_module": "nodes", "category": "image", "output_node": true},
  "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd_xl_base_1.0.safetensors",
      "v1-5-pruned-emaonly.safetensors"], {"tooltip": "The name of the checkpoint (model) to load."}]}},
    "input_order": {"required": ["ckpt_name"]}, "output": ["MODEL", "CLIP", "VAE"],
    "output_is_list": [false, false, false], "output_name": ["MODEL", "CLIP", "VAE"],
    "name": "CheckpointLoaderSimple", "display_name": "Load Checkpoint", "description": "",
    "python_module": "nodes", "category": "loaders", "output_node": false},
  "CLIPTextEncode": {"input": {"required": {"text": ["STRING", {"multiline": true, "dynamicPrompts": true}],
      "clip": ["CLIP"]}}, "input_order": {"required": ["text", "clip"]}, "output": ["CONDITIONING"],
    "output_is_list": [false], "output_name": ["CONDITIONING"], "name": "CLIPTextEncode",
    "display_name": "CLIP Text Encode (Prompt)", "description": "", "python_module": "nodes",
    "category": "conditioning", "output_node": false},
  "EmptyLatentImage": {"input": {"required": {
      "width": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
      "height": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
      "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}},
    "input_order": {"required": ["width", "height", "batch_size"]}, "output": ["LATENT"],
    "output_is_list": [false], "output_name": ["LATENT"], "name": "EmptyLatentImage",
    "display_name": "Empty Latent Image", "description": "", "python_module": "nodes",
    "category": "latent", "output_node": false},
  "KSampler": {"input": {"required": {"model": ["MODEL"],
      "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": true}],
      "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
      "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
      "sampler_name": [["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde"], {}],
      "scheduler": [["normal", "karras", "exponential", "simple"], {}],
      "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
      "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}},
    "input_order": {"required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler",
      "positive", "negative", "latent_image", "denoise"]}, "output": ["LATENT"],
    "output_is_list": [false], "output_name": ["LATENT"], "name": "KSampler",
    "display_name": "KSampler", "description": "", "python_module": "nodes",
    "category": "sampling", "output_node": false},
  "VAEDecode": {"input": {"required": {"samples": ["LATENT"], "vae": ["VAE"]}},
    "input_order": {"required": ["samples", "vae"]}, "output": ["IMAGE"], "output_is_list": [false],
    "output_name": ["IMAGE"], "name": "VAEDecode", "display_name": "VAE Decode", "description": "",
    "python_module": "nodes", "category": "latent", "output_node": false},
  "Canny": {"input": {"required": {"image": ["IMAGE", {}],
      "low_threshold": ["FLOAT", {"default": 0.4, "min": 0.01, "max": 0.99, "step": 0.01}],
      "high_threshold": ["FLOAT", {"default": 0.8, "min": 0.01, "max": 0.99, "step": 0.01}]}},
    "input_order": {"required": ["image", "low_threshold", "high_threshold"]}, "output": ["IMAGE"],
    "output_is_list": [false], "output_name": ["IMAGE"], "name": "Canny", "display_name": "Canny",
    "description": "", "python_module": "comfy_extras.nodes_canny", "category": "image/preprocessors",
    "output_node": false},
  "GetImageSize": {"input": {"required": {"image": ["IMAGE", {}]}, "hidden": {"unique_id": "UNIQUE_ID"}},
    "input_order": {"required": ["image"], "hidden": ["unique_id"]}, "output": ["INT", "INT", "INT"],
    "output_is_list": [false, false, false], "output_name": ["width", "height", "batch_size"],
    "name": "GetImageSize", "display_name": "Get Image Size", "description": "",
    "python_module": "comfy_extras.nodes_images", "category": "image", "output_node": false},
  "PreviewAny": {"input": {"required": {"source": ["*", {}]}}, "input_order": {"required": ["source"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "PreviewAny",
    "display_name": "Preview Any", "description": "", "python_module": "comfy_extras.nodes_preview_any",
    "category": "utils", "output_node": true}
})json");
// An 8x8 RGB PNG, as small as a real one gets.
const std::string k_png(
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x08\x00\x00"
    "\x00\x08\x08\x02\x00\x00\x00\x4b\x6d\x29\xdc\x00\x00\x00\x11\x49\x44\x41\x54\x78\xda\x63"
    "\xd8\xc9\x7c\x1e\x2b\x62\x18\x5a\x12\x00\x90\x82\x62\xc1\x57\x43\xf3\x06\x00\x00\x00\x00"
    "\x49\x45\x4e\x44\xae\x42\x60\x82",
    74);
// The traceback ComfyUI 0.3.64 sent for a failing Canny node (shortened to its outer frames).
const json k_canny_traceback = json::array(
    {"  File \"/opt/comfyui-src/execution.py\", line 496, in execute\n    output_data, output_ui, "
     "has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, "
     "input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
     "hidden_inputs=hidden_inputs)\n",
     "  File \"/opt/comfyui-src/comfy_extras/nodes_canny.py\", line 29, in execute\n    output = "
     "canny(image.to(comfy.model_management.get_torch_device()).movedim(-1, 1), low_threshold, "
     "high_threshold)\n",
     "  File \"stubs/_comfystub/__init__.py\", line 13, in _f\n    raise StubUnavailable(f\"{qualname} "
     "is a stub: the real package is not installed\")\n"});

}  // namespace autopod::sandbox::comfy_fake
