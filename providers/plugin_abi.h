/* The C ABI of autopod provider plugins: a shared library exporting one function,
 * autopod_provider_plugin(), that returns a description of the plugin.
 *
 * Requests and answers are JSON text, so the ABI does not depend on the C++ standard library
 * or compiler the plugin was built with:
 *   request:  {"op": "list_pods"|"get_pod"|"create_pod"|"start_pod"|"stop_pod"|
 *              "terminate_pod"|"list_volumes"|"get_volume"|"create_volume"|"delete_volume"|
 *              "list_gpu_types"|"list_data_centers"|"capabilities", "id": "...", "spec": {...}}
 *   answer:   {"ok": true, "result": ...}  or
 *             {"ok": false, "error": {"code": "not_found", "message": "...", "hint": "..."}}
 * Shapes of pods, volumes and specs are those of autopod's --json output (README). A pod may
 * leave out "comfy_port" (8188), "models_root" (<mount_path or /workspace>/ComfyUI/models) and
 * "ssh.key" (autopod's own key), so plugins written before these fields keep working.
 * "capabilities" is optional: {"create", "stop_start", "terminate", "volumes", "billing",
 * "records", "managed_key"} as booleans (missing ones true); a plugin that answers it with an
 * error is taken to do everything (see Capabilities in providers/provider.hpp).
 * No C++ exception may leave these functions; autopod catches one anyway and reports it. */
#ifndef AUTOPOD_PLUGIN_ABI_H
#define AUTOPOD_PLUGIN_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AUTOPOD_PLUGIN_ABI_VERSION 1u
#define AUTOPOD_PLUGIN_ENTRY "autopod_provider_plugin"

typedef struct autopod_provider_plugin_v1 {
  uint32_t abi_version; /* AUTOPOD_PLUGIN_ABI_VERSION the plugin was built against */
  const char* name;     /* provider name, e.g. "vast" */
  /* Makes a provider instance from the JSON of the plugin's own section of config.yaml,
   *   plugins:
   *     vast:            <- the plugin's name
   *       region: EU     <- handed over as {"region": "EU", "home": "/root/.autopod"}
   * ("home", AUTOPOD_HOME, is added unless the section sets it; without a section: only it).
   * Returns NULL and sets *error (malloc'd, freed with free_string) on failure. */
  void* (*create)(const char* config_json, char** error);
  /* Handles one request; returns an answer the caller frees with free_string. */
  char* (*call)(void* instance, const char* request_json);
  void (*destroy)(void* instance);
  void (*free_string)(char* text);
} autopod_provider_plugin_v1;

/* The entry point every plugin exports. */
typedef const autopod_provider_plugin_v1* (*autopod_provider_plugin_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
