/*
 * The C ABI exercised from C, the way a trainer written in C or C++ uses it.
 *
 * usage: test_zenith DATA.parquet CORRUPT.parquet MISSING_PATH EXPECTED_VERSION
 *
 * DATA.parquet holds ROWS rows: id int64 = 0..ROWS-1, x float64 = id / 2, name utf8 = "row-<id>",
 * in row groups of 128 rows. Every check prints its location on failure; the exit code is 1 when
 * any failed. Every Arrow struct handed out is released, so a leak checker sees a clean exit.
 */
#include "zenith.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 1000
#define BATCH 64

static int checks = 0;
static int failures = 0;

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    checks++;                                                               \
    if (!(cond)) {                                                          \
      failures++;                                                           \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
      fprintf(stderr, __VA_ARGS__);                                         \
      fputc('\n', stderr);                                                  \
    }                                                                       \
  } while (0)

#define CHECK_STATUS(call, expected)                                        \
  do {                                                                      \
    ZenithStatus status_ = (call);                                          \
    CHECK(status_ == (expected), "%s returned %d, expected %s (%d); last error: %s", \
          #call, (int)status_, #expected, (int)(expected), zenith_last_error()); \
  } while (0)

/* Index of logical row `row` of struct array `batch` inside its child `column`. */
static int64_t child_index(const struct ArrowArray* batch, int column, int64_t row) {
  return batch->offset + batch->children[column]->offset + row;
}

static int64_t int64_at(const struct ArrowArray* batch, int column, int64_t row) {
  const int64_t* values = (const int64_t*)batch->children[column]->buffers[1];
  return values[child_index(batch, column, row)];
}

static double float64_at(const struct ArrowArray* batch, int column, int64_t row) {
  const double* values = (const double*)batch->children[column]->buffers[1];
  return values[child_index(batch, column, row)];
}

/* Compares utf8 value `row` of `column` with `expected`. */
static int utf8_equals(const struct ArrowArray* batch, int column, int64_t row, const char* expected) {
  const struct ArrowArray* child = batch->children[column];
  const int32_t* offsets = (const int32_t*)child->buffers[1];
  const char* data = (const char*)child->buffers[2];
  int64_t i = child_index(batch, column, row);
  size_t len = (size_t)(offsets[i + 1] - offsets[i]);
  return len == strlen(expected) && memcmp(data + offsets[i], expected, len) == 0;
}

static int contains(const char* haystack, const char* needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static void test_library(const char* expected_version) {
  CHECK(strcmp(zenith_version(), expected_version) == 0, "version %s, expected %s", zenith_version(),
        expected_version);
  CHECK_STATUS(zenith_init(NULL), ZENITH_OK);
  CHECK_STATUS(zenith_init("{\"cache_bytes\": 50000000}"), ZENITH_OK);
  CHECK_STATUS(zenith_init("{\"threads\": 2}"), ZENITH_ERR_INVALID_ARG);
  CHECK(contains(zenith_last_error(), "threads"), "last error: %s", zenith_last_error());
  CHECK_STATUS(zenith_init("{\"cache_bytes\": -1}"), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_init("{\"cache_bytes\": 50000000}"), ZENITH_OK);
  CHECK(strcmp(zenith_last_error(), "") == 0, "a success clears the last error, got: %s", zenith_last_error());
}

static void test_panic_is_contained(void) {
  CHECK_STATUS(zenith_test_panic(), ZENITH_FFI_PANIC);
  CHECK(contains(zenith_last_error(), "panic"), "last error: %s", zenith_last_error());
  CHECK_STATUS(zenith_test_panic(), ZENITH_FFI_PANIC);
  /* The library stays usable after a caught panic. */
  CHECK(strlen(zenith_version()) > 0, "empty version after a panic");
}

/* Reads DATA through the stream interface, all columns, and checks every value in file order. */
static void test_stream_all_columns(const char* data) {
  struct ArrowArrayStream stream;
  CHECK_STATUS(zenith_load(data, NULL, &stream), ZENITH_OK);
  if (stream.release == NULL) return;

  struct ArrowSchema schema;
  CHECK(stream.get_schema(&stream, &schema) == 0, "get_schema: %s", stream.get_last_error(&stream));
  CHECK(strcmp(schema.format, "+s") == 0, "stream schema format %s", schema.format);
  CHECK(schema.n_children == 3, "%lld columns", (long long)schema.n_children);
  if (schema.n_children == 3) {
    const char* names[3] = {"id", "x", "name"};
    const char* formats[3] = {"l", "g", "u"};
    for (int c = 0; c < 3; c++) {
      CHECK(strcmp(schema.children[c]->name, names[c]) == 0, "column %d is %s", c, schema.children[c]->name);
      CHECK(strcmp(schema.children[c]->format, formats[c]) == 0, "column %s has format %s", names[c],
            schema.children[c]->format);
    }
  }
  schema.release(&schema);

  int64_t rows = 0, id_sum = 0, batches = 0, out_of_order = 0, bad_x = 0, bad_name = 0;
  double x_sum = 0;
  for (;;) {
    struct ArrowArray batch;
    int rc = stream.get_next(&stream, &batch);
    CHECK(rc == 0, "get_next: %s", stream.get_last_error(&stream));
    if (rc != 0 || batch.release == NULL) break;
    batches++;
    CHECK(batch.n_children == 3 && batch.null_count == 0, "batch shape");
    for (int64_t r = 0; r < batch.length; r++) {
      int64_t id = int64_at(&batch, 0, r);
      double x = float64_at(&batch, 1, r);
      char name[32];
      snprintf(name, sizeof name, "row-%lld", (long long)id);
      out_of_order += id != rows + r;
      bad_x += x != (double)id / 2;
      bad_name += !utf8_equals(&batch, 2, r, name);
      id_sum += id;
      x_sum += x;
    }
    rows += batch.length;
    batch.release(&batch);
  }
  stream.release(&stream);
  CHECK(stream.release == NULL, "a released stream has release == NULL");
  CHECK(rows == ROWS, "%lld rows", (long long)rows);
  CHECK(batches >= 1, "no batch");
  CHECK(id_sum == (int64_t)ROWS * (ROWS - 1) / 2, "sum of id %lld", (long long)id_sum);
  CHECK(x_sum == (double)ROWS * (ROWS - 1) / 4, "sum of x %f", x_sum);
  CHECK(out_of_order == 0 && bad_x == 0 && bad_name == 0, "%lld rows out of order, %lld bad x, %lld bad names",
        (long long)out_of_order, (long long)bad_x, (long long)bad_name);
}

/* A column list picks and orders the columns. */
static void test_stream_projection(const char* data) {
  struct ArrowArrayStream stream;
  CHECK_STATUS(zenith_load(data, "[\"x\", \"id\"]", &stream), ZENITH_OK);
  if (stream.release == NULL) return;
  struct ArrowSchema schema;
  CHECK(stream.get_schema(&stream, &schema) == 0, "get_schema");
  CHECK(schema.n_children == 2 && strcmp(schema.children[0]->name, "x") == 0 &&
            strcmp(schema.children[1]->name, "id") == 0,
        "projected schema");
  schema.release(&schema);
  int64_t rows = 0, id_sum = 0;
  double x_sum = 0;
  struct ArrowArray batch;
  while (stream.get_next(&stream, &batch) == 0 && batch.release != NULL) {
    for (int64_t r = 0; r < batch.length; r++) {
      x_sum += float64_at(&batch, 0, r);
      id_sum += int64_at(&batch, 1, r);
    }
    rows += batch.length;
    batch.release(&batch);
  }
  stream.release(&stream);
  CHECK(rows == ROWS && id_sum == (int64_t)ROWS * (ROWS - 1) / 2 && x_sum == (double)ROWS * (ROWS - 1) / 4,
        "projected rows %lld, id sum %lld, x sum %f", (long long)rows, (long long)id_sum, x_sum);
}

static const char* LOADER_CONFIG =
    "{\"batch_size\": 64, \"shuffle\": true, \"seed\": 7, \"num_workers\": 2, \"columns\": [\"id\", \"x\"]}";

/* Takes up to `max_batches` batches (all when negative) and appends their ids to `ids` from
 * `*count` on; checks x against id and the batch sizes. Returns the status that stopped it. */
static ZenithStatus take_batches(ZenithLoader* loader, int max_batches, int64_t* ids, int64_t* count) {
  for (int taken = 0; max_batches < 0 || taken < max_batches; taken++) {
    struct ArrowArray batch;
    struct ArrowSchema schema;
    ZenithStatus status = zenith_loader_next(loader, &batch, &schema);
    if (status != ZENITH_OK) {
      CHECK(batch.release == NULL && schema.release == NULL, "nothing is exported with status %d", (int)status);
      return status;
    }
    CHECK(strcmp(schema.format, "+s") == 0 && schema.n_children == 2, "batch schema %s", schema.format);
    CHECK(strcmp(schema.children[0]->name, "id") == 0 && strcmp(schema.children[0]->format, "l") == 0,
          "first column %s:%s", schema.children[0]->name, schema.children[0]->format);
    CHECK(strcmp(schema.children[1]->name, "x") == 0 && strcmp(schema.children[1]->format, "g") == 0,
          "second column %s:%s", schema.children[1]->name, schema.children[1]->format);
    int64_t expected_len = ROWS - *count < BATCH ? ROWS - *count : BATCH;
    CHECK(batch.length == expected_len, "batch of %lld rows after %lld, expected %lld", (long long)batch.length,
          (long long)*count, (long long)expected_len);
    for (int64_t r = 0; r < batch.length && *count < ROWS; r++) {
      int64_t id = int64_at(&batch, 0, r);
      CHECK(float64_at(&batch, 1, r) == (double)id / 2, "x of id %lld", (long long)id);
      ids[(*count)++] = id;
    }
    schema.release(&schema);
    batch.release(&batch);
  }
  return ZENITH_OK;
}

/* Every id of 0..ROWS-1 exactly once among `ids[0..count)`. */
static void check_permutation(const int64_t* ids, int64_t count, const char* what) {
  static int seen[ROWS];
  memset(seen, 0, sizeof seen);
  int64_t bad = 0;
  for (int64_t i = 0; i < count; i++) {
    if (ids[i] < 0 || ids[i] >= ROWS || seen[ids[i]]++) bad++;
  }
  CHECK(count == ROWS && bad == 0, "%s: %lld rows, %lld repeated or out of range", what, (long long)count,
        (long long)bad);
}

static int64_t epoch0[ROWS];

static void test_loader_epochs(const char* data) {
  ZenithLoader* loader = NULL;
  CHECK_STATUS(zenith_loader_new(data, LOADER_CONFIG, &loader), ZENITH_OK);
  if (loader == NULL) return;

  int64_t count = 0;
  CHECK_STATUS(take_batches(loader, -1, epoch0, &count), ZENITH_END);
  check_permutation(epoch0, count, "epoch 0");
  int64_t in_place = 0;
  for (int64_t i = 0; i < count; i++) in_place += epoch0[i] == i;
  CHECK(in_place < ROWS / 10, "shuffle left %lld of %d rows in place", (long long)in_place, ROWS);

  /* After ZENITH_END the next call starts the next epoch, in another order. */
  static int64_t epoch1[ROWS];
  int64_t count1 = 0;
  CHECK_STATUS(take_batches(loader, -1, epoch1, &count1), ZENITH_END);
  check_permutation(epoch1, count1, "epoch 1");
  CHECK(memcmp(epoch0, epoch1, sizeof epoch0) != 0, "epoch 1 repeats epoch 0's order");
  CHECK_STATUS(zenith_loader_free(loader), ZENITH_OK);
}

/* Save after 5 batches, free the loader mid-epoch, restore into a new one: the rows of both
 * parts together are exactly epoch 0 of an uninterrupted run, in the same order. */
static void test_loader_resume(const char* data) {
  ZenithLoader* first = NULL;
  CHECK_STATUS(zenith_loader_new(data, LOADER_CONFIG, &first), ZENITH_OK);
  if (first == NULL) return;
  static int64_t ids[ROWS];
  int64_t count = 0;
  CHECK_STATUS(take_batches(first, 5, ids, &count), ZENITH_OK);
  CHECK(count == 5 * BATCH, "%lld rows before the save", (long long)count);

  size_t len = 0;
  CHECK_STATUS(zenith_loader_state(first, NULL, &len), ZENITH_OK);
  CHECK(len > 1, "state size %zu", len);
  char tiny[4];
  size_t tiny_len = sizeof tiny;
  CHECK_STATUS(zenith_loader_state(first, tiny, &tiny_len), ZENITH_ERR_BUFFER_TOO_SMALL);
  CHECK(tiny_len == len, "too-small call reports %zu, expected %zu", tiny_len, len);
  char* state = malloc(len);
  size_t cap = len;
  CHECK_STATUS(zenith_loader_state(first, state, &cap), ZENITH_OK);
  CHECK(cap == len && strlen(state) + 1 == len && state[0] == '{', "state: %s", state);
  CHECK_STATUS(zenith_loader_free(first), ZENITH_OK);

  ZenithLoader* second = NULL;
  CHECK_STATUS(zenith_loader_new(data, LOADER_CONFIG, &second), ZENITH_OK);
  if (second != NULL) {
    CHECK_STATUS(zenith_loader_restore(second, "{\"epoch\": "), ZENITH_ERR_INVALID_ARG);
    CHECK_STATUS(zenith_loader_restore(second, NULL), ZENITH_ERR_INVALID_ARG);
    CHECK_STATUS(zenith_loader_restore(second, state), ZENITH_OK);
    CHECK_STATUS(take_batches(second, -1, ids, &count), ZENITH_END);
    check_permutation(ids, count, "resumed epoch");
    CHECK(memcmp(ids, epoch0, sizeof ids) == 0, "the resumed epoch differs from the uninterrupted one");
    CHECK_STATUS(zenith_loader_free(second), ZENITH_OK);
  }

  /* A state of another shuffle setting is refused. */
  ZenithLoader* unshuffled = NULL;
  CHECK_STATUS(zenith_loader_new(data, "{\"shuffle\": false}", &unshuffled), ZENITH_OK);
  CHECK_STATUS(zenith_loader_restore(unshuffled, state), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_free(unshuffled), ZENITH_OK);
  free(state);
}

static void test_errors(const char* data, const char* corrupt, const char* missing) {
  struct ArrowArrayStream stream;
  CHECK_STATUS(zenith_load(missing, NULL, &stream), ZENITH_ERR_IO);
  CHECK(contains(zenith_last_error(), missing), "last error names the path: %s", zenith_last_error());
  CHECK(stream.release == NULL, "a failed load exports a released stream");
  CHECK_STATUS(zenith_load(corrupt, NULL, &stream), ZENITH_ERR_FORMAT);
  CHECK(contains(zenith_last_error(), corrupt), "last error names the file: %s", zenith_last_error());
  CHECK_STATUS(zenith_load(data, "[\"id\",", &stream), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_load(data, "{\"id\": 1}", &stream), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_load(data, "[\"id\", \"nope\"]", &stream), ZENITH_ERR_SCHEMA);
  CHECK(contains(zenith_last_error(), "nope"), "last error names the column: %s", zenith_last_error());
  CHECK_STATUS(zenith_load(NULL, NULL, &stream), ZENITH_ERR_INVALID_ARG);
  CHECK(contains(zenith_last_error(), "path"), "last error names the argument: %s", zenith_last_error());
  CHECK_STATUS(zenith_load(data, NULL, NULL), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_load("\xff\xfe.parquet", NULL, &stream), ZENITH_ERR_INVALID_ARG);
  CHECK(contains(zenith_last_error(), "UTF-8"), "last error: %s", zenith_last_error());

  ZenithLoader* loader = (ZenithLoader*)&stream; /* must be overwritten with NULL on failure */
  CHECK_STATUS(zenith_loader_new(missing, NULL, &loader), ZENITH_ERR_IO);
  CHECK(loader == NULL, "a failed zenith_loader_new stores NULL");
  CHECK_STATUS(zenith_loader_new(corrupt, NULL, &loader), ZENITH_ERR_FORMAT);
  CHECK_STATUS(zenith_loader_new(data, "{\"batch_sise\": 3}", &loader), ZENITH_ERR_INVALID_ARG);
  CHECK(contains(zenith_last_error(), "batch_sise"), "last error names the key: %s", zenith_last_error());
  CHECK_STATUS(zenith_loader_new(data, "{not json", &loader), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_new(data, "{\"batch_size\": 0}", &loader), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_new(data, "{\"rank\": 2, \"world_size\": 2}", &loader), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_new(data, "{\"columns\": [\"nope\"]}", &loader), ZENITH_ERR_SCHEMA);
  CHECK_STATUS(zenith_loader_new(NULL, NULL, &loader), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_new(data, NULL, NULL), ZENITH_ERR_INVALID_ARG);

  struct ArrowArray batch;
  size_t len = 0;
  CHECK_STATUS(zenith_loader_next(NULL, &batch, NULL), ZENITH_ERR_INVALID_ARG);
  CHECK(contains(zenith_last_error(), "handle"), "last error: %s", zenith_last_error());
  CHECK_STATUS(zenith_loader_state(NULL, NULL, &len), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_restore(NULL, "{}"), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_loader_free(NULL), ZENITH_OK);

  CHECK_STATUS(zenith_loader_new(data, "{\"shuffle\": false, \"batch_size\": 1000}", &loader), ZENITH_OK);
  if (loader != NULL) {
    CHECK_STATUS(zenith_loader_next(loader, NULL, NULL), ZENITH_ERR_INVALID_ARG);
    CHECK_STATUS(zenith_loader_state(loader, NULL, NULL), ZENITH_ERR_INVALID_ARG);
    /* out_schema may be NULL: only the array is exported. */
    CHECK_STATUS(zenith_loader_next(loader, &batch, NULL), ZENITH_OK);
    CHECK(batch.release != NULL && batch.length == ROWS && int64_at(&batch, 0, ROWS - 1) == ROWS - 1,
          "unshuffled single batch");
    if (batch.release != NULL) batch.release(&batch);
    CHECK_STATUS(zenith_loader_next(loader, &batch, NULL), ZENITH_END);
    CHECK(batch.release == NULL, "ZENITH_END exports nothing");
    CHECK_STATUS(zenith_loader_free(loader), ZENITH_OK);
  }
}

static void test_validators(void) {
  CHECK_STATUS(zenith_validate_job_name("train-resnet_50"), ZENITH_OK);
  CHECK_STATUS(zenith_validate_job_name(""), ZENITH_ERR_VALIDATION);
  CHECK_STATUS(zenith_validate_job_name("train model"), ZENITH_ERR_VALIDATION);
  CHECK(contains(zenith_last_error(), "name"), "last error names the field: %s", zenith_last_error());
  char name[258];
  memset(name, 'a', 256);
  name[256] = '\0';
  CHECK_STATUS(zenith_validate_job_name(name), ZENITH_OK);
  name[256] = 'a';
  name[257] = '\0';
  CHECK_STATUS(zenith_validate_job_name(name), ZENITH_ERR_VALIDATION);
  CHECK_STATUS(zenith_validate_job_name(NULL), ZENITH_ERR_INVALID_ARG);
  CHECK_STATUS(zenith_validate_job_name("caf\xe9"), ZENITH_ERR_INVALID_ARG);

  CHECK_STATUS(zenith_validate_path("/data/train/shard-0.parquet"), ZENITH_OK);
  CHECK_STATUS(zenith_validate_path("data/../secret"), ZENITH_ERR_VALIDATION);
  CHECK_STATUS(zenith_validate_path(""), ZENITH_ERR_VALIDATION);
  CHECK_STATUS(zenith_validate_path(NULL), ZENITH_ERR_INVALID_ARG);

  CHECK_STATUS(zenith_validate_command("python train.py --epochs 3"), ZENITH_OK);
  const char* bad[] = {"echo $(id)", "echo `id`", "a && b", "a || b", "a; b", "a | b", "a > f", "a < f",
                       "cat ../x", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(zenith_validate_command(bad[i]) == ZENITH_ERR_VALIDATION, "command \"%s\" accepted", bad[i]);
  }
  CHECK_STATUS(zenith_validate_command(NULL), ZENITH_ERR_INVALID_ARG);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s DATA.parquet CORRUPT.parquet MISSING_PATH EXPECTED_VERSION\n", argv[0]);
    return 2;
  }
  const char* data = argv[1];
  const char* corrupt = argv[2];
  const char* missing = argv[3];

  test_library(argv[4]);
  test_panic_is_contained();
  test_stream_all_columns(data);
  test_stream_all_columns(data); /* a second read may be served from the cache */
  test_stream_projection(data);
  test_loader_epochs(data);
  test_loader_resume(data);
  test_errors(data, corrupt, missing);
  test_validators();

  printf("test_zenith: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
