/*
 * zenith.h: the C ABI of Zenith's data-loading engine (libzenith_core.so).
 *
 * Generated from crates/zenith-ffi by cbindgen; do not edit by hand.
 *
 * Conventions:
 *  - Every fallible function returns a ZenithStatus; ZENITH_OK is 0. After any other code except
 *    ZENITH_END, zenith_last_error() describes the failure on the calling thread.
 *  - No function unwinds or aborts on a library bug: a caught panic returns ZENITH_FFI_PANIC.
 *  - Strings in are NUL-terminated UTF-8; JSON arguments reject unknown keys.
 *  - Results use the Arrow C Data and C Stream interfaces; every struct handed out is released
 *    by the caller with its own release callback. The definitions below are those of the Arrow
 *    specification, guarded so that a program that already has them (from nanoarrow, Arrow C++,
 *    ...) can include this header too.
 *
 * Example: one epoch of shuffled batches of 64 rows.
 *
 *   ZenithLoader* loader;
 *   if (zenith_loader_new("data/train/", "{\"batch_size\": 64, \"seed\": 1}", &loader) != ZENITH_OK) {
 *     fprintf(stderr, "%s\n", zenith_last_error());
 *     return 1;
 *   }
 *   struct ArrowArray batch;
 *   struct ArrowSchema schema;
 *   ZenithStatus status;
 *   while ((status = zenith_loader_next(loader, &batch, &schema)) == ZENITH_OK) {
 *     use(&batch, &schema);  // a struct array: one child per column
 *     batch.release(&batch);
 *     schema.release(&schema);
 *   }
 *   if (status != ZENITH_END) fprintf(stderr, "%s\n", zenith_last_error());
 *   zenith_loader_free(loader);
 */


#ifndef ZENITH_H
#define ZENITH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;
  void (*release)(struct ArrowSchema*);
  void* private_data;
};

struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;
  void (*release)(struct ArrowArray*);
  void* private_data;
};

#endif  /* ARROW_C_DATA_INTERFACE */

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE

struct ArrowArrayStream {
  int (*get_schema)(struct ArrowArrayStream*, struct ArrowSchema* out);
  int (*get_next)(struct ArrowArrayStream*, struct ArrowArray* out);
  const char* (*get_last_error)(struct ArrowArrayStream*);
  void (*release)(struct ArrowArrayStream*);
  void* private_data;
};

#endif  /* ARROW_C_STREAM_INTERFACE */

#ifdef __cplusplus
}
#endif


// Result of every fallible `zenith_*` function. `ZENITH_OK` is 0; after any other code except
// `ZENITH_END`, `zenith_last_error()` describes what went wrong on the calling thread.
enum ZenithStatus
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  // Success.
  ZENITH_OK = 0,
  // `zenith_loader_next` only: the epoch is complete and nothing was exported.
  ZENITH_END = 1,
  // A NULL pointer, invalid UTF-8, malformed JSON, an unknown setting or an out-of-range value.
  ZENITH_ERR_INVALID_ARG = 2,
  // The source is missing, matches no data file, or cannot be read.
  ZENITH_ERR_IO = 3,
  // A file's bytes are not valid for its format (corrupt or truncated file).
  ZENITH_ERR_FORMAT = 4,
  // An unknown column, or files whose schemas disagree.
  ZENITH_ERR_SCHEMA = 5,
  // Object storage failed after retries.
  ZENITH_ERR_STORAGE = 6,
  // A job name, path or command broke a validation rule.
  ZENITH_ERR_VALIDATION = 7,
  // `zenith_loader_state` only: the buffer is too small; the needed size was written back.
  ZENITH_ERR_BUFFER_TOO_SMALL = 8,
  // The iteration was interrupted or the loader was shut down.
  ZENITH_ERR_INTERRUPTED = 9,
  // An error of a class this version of the header does not name.
  ZENITH_ERR_INTERNAL = 10,
  // A Rust panic was caught at the boundary; the library is still usable.
  ZENITH_FFI_PANIC = 11,
  // The system refused a thread, runtime or memory the call needed (a resource limit).
  ZENITH_ERR_RESOURCE = 12,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum ZenithStatus ZenithStatus;
#else
typedef int32_t ZenithStatus;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// An open loader: the dataset, its plan and the running iteration of the current epoch.
//
// Opaque to C. A handle may move between threads but must not be used by two at once.
typedef struct ZenithLoader ZenithLoader;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// Applies library settings; optional, and may be called again to change them.
//
// `config_json` is NULL (no change) or a JSON object with the optional keys `"cache_bytes"`
// (budget of the small-dataset cache, 0 disables it) and `"log_level"` (a tracing filter such as
// `"info"` or `"zenith_core=debug"`; logs go to stderr; the first filter set in a process stays).
// Unknown keys are rejected with `ZENITH_ERR_INVALID_ARG`.
//
// # Safety
// `config_json` must be NULL or a NUL-terminated string valid for the duration of the call.
ZenithStatus zenith_init(const char *config_json);

// The library version, e.g. `"0.1.0"`: a static NUL-terminated string the caller must not free.
const char *zenith_version(void);

// The message of the last failed call on this thread, or `""` when the last call succeeded.
//
// Never NULL. The string belongs to the library and stays valid until the next `zenith_*` call on
// the same thread; copy it to keep it.
const char *zenith_last_error(void);

// Reads a whole dataset (a file, a directory or a glob; Parquet, CSV or Arrow IPC, detected) and
// exports it as an Arrow C stream of struct arrays, one per record batch, in file order.
//
// `columns_json` is NULL for every column, or a JSON array of column names, e.g. `["x", "y"]`,
// which also fixes their order. On success `*out` owns the stream: the caller releases it with
// `out->release(out)`. On failure `*out` is written as a released stream (`out->release == NULL`).
//
// Errors: `ZENITH_ERR_IO` (missing or unreadable source), `ZENITH_ERR_FORMAT` (corrupt file),
// `ZENITH_ERR_SCHEMA` (unknown column, schemas differ), `ZENITH_ERR_INVALID_ARG` (NULL `path` or
// `out`, invalid UTF-8, malformed `columns_json`).
//
// # Safety
// `path` and `columns_json` must be NULL or NUL-terminated strings valid for the call; `out` must
// be NULL or point to writable memory for one `struct ArrowArrayStream` (its old contents are
// overwritten, not released).
ZenithStatus zenith_load(const char *path, const char *columns_json, struct ArrowArrayStream *out);

// Panics inside the library on purpose and reports it: always returns `ZENITH_FFI_PANIC`.
//
// For tests of a host's error handling; it proves that a Rust panic comes back as a status code
// and a `zenith_last_error()` message, never as an unwind into the caller.
ZenithStatus zenith_test_panic(void);

// Opens a loader over `source` (a file, a directory or a glob) and stores its handle in `*out`.
//
// `config_json` is NULL for the defaults or a JSON object whose keys are the loader settings:
// `batch_size` (32), `shuffle` (true), `seed` (0), `columns` (all: a list of names, or an object
// mapping output names to a column, a list of numeric columns stacked into `[rows, k]`, or
// `{"column"|"stack": ..., "dtype": "float32"}`), `num_workers` (`ZENITH_NUM_WORKERS` or the
// usable CPUs less one), `drop_last` (false), `prefetch` (8), `rank` (0), `world_size` (1),
// `on_error` (`"raise"` or `"skip"`), `output` (`"tensors"` or `"arrow"`), `shuffle_window`,
// `memory_budget`, `reuse_budget` and `format`. Unknown keys are rejected. On failure `*out` is set to NULL.
//
// # Safety
// `source` and `config_json` must be NULL or NUL-terminated strings valid for the call; `out`
// must be NULL or point to writable storage for one pointer.
ZenithStatus zenith_loader_new(const char *source,
                               const char *config_json,
                               struct ZenithLoader **out);

// Exports the next batch of the current epoch as an Arrow struct array with its schema.
//
// Returns `ZENITH_OK` with `*out` (and `*out_schema` unless it is NULL) owned by the caller, who
// releases each with its `release` callback. Returns `ZENITH_END` when the epoch is complete:
// nothing is exported and `out->release` (and `out_schema->release`) is NULL; the next call
// starts the next epoch. On an error the iteration stops and the next call starts the current
// epoch again from its beginning (or from a state given to `zenith_loader_restore`).
//
// # Safety
// `handle` must be a live handle from `zenith_loader_new`; `out` must point to writable memory
// for one `struct ArrowArray` and `out_schema` must be NULL or point to writable memory for one
// `struct ArrowSchema` (old contents are overwritten, not released).
ZenithStatus zenith_loader_next(struct ZenithLoader *handle,
                                struct ArrowArray *out,
                                struct ArrowSchema *out_schema);

// Writes the loader's resume state (JSON text, NUL-terminated) into `buf`.
//
// `*len` is the capacity of `buf` in bytes on entry and, on return, the size the state needs
// including its NUL. Ask for the size with `buf == NULL` (returns `ZENITH_OK` and sets `*len`),
// then call again with a buffer that large. A non-NULL `buf` smaller than needed returns
// `ZENITH_ERR_BUFFER_TOO_SMALL` with `*len` set and `buf` untouched. The state counts the
// batches the caller has received, not those prefetched.
//
// # Safety
// `handle` must be a live handle; `len` must point to a readable and writable `size_t`; `buf`
// must be NULL or point to at least `*len` writable bytes.
ZenithStatus zenith_loader_state(struct ZenithLoader *handle, char *buf, size_t *len);

// Restores a state from `zenith_loader_state`: the next `zenith_loader_next` continues right
// after the last batch delivered when it was saved, with no row repeated or lost (also under
// another `num_workers` or `world_size`). A running epoch is stopped first.
//
// Errors: `ZENITH_ERR_INVALID_ARG` for malformed JSON or a state of another dataset or shuffle
// setting; the loader is then unchanged except that a running epoch was stopped.
//
// # Safety
// `handle` must be a live handle; `state_json` a NUL-terminated string valid for the call.
ZenithStatus zenith_loader_restore(struct ZenithLoader *handle, const char *state_json);

// Stops the loader's threads and frees the handle; NULL is a no-op. Batches already exported
// stay valid until released.
//
// # Safety
// `handle` must be NULL or a live handle from `zenith_loader_new`, not used again afterwards.
ZenithStatus zenith_loader_free(struct ZenithLoader *handle);

// Checks a job name: 1–256 characters, each an ASCII letter, digit, `-` or `_`.
//
// Returns `ZENITH_OK` for a valid name, `ZENITH_ERR_VALIDATION` with the broken rule in
// `zenith_last_error()` for an invalid one, and `ZENITH_ERR_INVALID_ARG` for NULL or invalid UTF-8.
//
// # Safety
// `name` must be NULL or a NUL-terminated string valid for the call.
ZenithStatus zenith_validate_job_name(const char *name);

// Checks a path: non-empty, at most 4096 bytes and no `..` component (a C string has no NUL).
//
// Returns `ZENITH_OK`, `ZENITH_ERR_VALIDATION` or `ZENITH_ERR_INVALID_ARG` as
// `zenith_validate_job_name` does.
//
// # Safety
// `path` must be NULL or a NUL-terminated string valid for the call.
ZenithStatus zenith_validate_path(const char *path);

// Checks a command line: non-empty, at most 65536 bytes, and none of the shell metacharacter
// sequences `$(`, backtick, `&&`, `||`, `;`, `|`, `>`, `<` nor `..` (commands run as argv,
// never through a shell). For an argv, pass its arguments joined by single spaces.
//
// Returns `ZENITH_OK`, `ZENITH_ERR_VALIDATION` or `ZENITH_ERR_INVALID_ARG` as
// `zenith_validate_job_name` does.
//
// # Safety
// `command` must be NULL or a NUL-terminated string valid for the call.
ZenithStatus zenith_validate_command(const char *command);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ZENITH_H */
