// kprof is a kernel-level GPU profiler for any CUDA program, Go binaries
// included (Nsight Compute crashes under the Go runtime on the GPU machine and
// Nsight Systems is not installed there). The CUDA driver loads it through
// its injection hook:
//
//	CUDA_INJECTION64_PATH=$PWD/bin/libkprof.so KPROF_OUT=/tmp/k.csv bin/rollout ...
//
// It asks CUPTI (loaded with dlopen: $KPROF_CUPTI, else libcupti.so*) for an
// activity record of every kernel and memory copy and streams them as CSV
// lines to $KPROF_OUT:
//
//	c,<cupti ns>,<unix ns>            the clock pair (CUPTI's clock to wall time)
//	n,<id>,<kernel name>              first sight of a name
//	k,<start>,<end>,<id>,<grid x·y·z>,<block x·y·z>,<stream>
//	m,<start>,<end>,<bytes>,<copy kind>,<stream>
//
// Times are CUPTI nanoseconds; subtract the c line's first field and add its
// second for wall time (summarize.py does this to select a benchmark's warm
// repetition). A background thread flushes every second, since a Go program
// leaves through exit_group without running atexit handlers.
//
// Build (no CUDA headers needed; the record layouts below are CUPTI's
// CUpti_ActivityKernel4…9 and CUpti_ActivityMemcpy prefixes, unchanged up to
// the fields read here through CUDA 13):
//
//	gcc -O2 -shared -fPIC -o bin/libkprof.so bench/kprof/kprof.c -ldl -lpthread
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kindMemcpy = 1, kindConcurrentKernel = 10 };

// kernelRecord is the prefix of CUPTI's kernel activity record.
typedef struct __attribute__((packed)) {
  uint32_t kind;
  uint8_t cacheConfig, sharedMemoryConfig;
  uint16_t registersPerThread;
  uint32_t partitionedRequested, partitionedExecuted;
  uint64_t start, end, completed;
  uint32_t deviceId, contextId, streamId;
  int32_t gridX, gridY, gridZ, blockX, blockY, blockZ;
  int32_t staticShared, dynamicShared;
  uint32_t localPerThread, localTotal, correlationId;
  int64_t gridId;
  const char *name;
} kernelRecord;

// memcpyRecord is the prefix of CUPTI's memory-copy activity record.
typedef struct __attribute__((packed)) {
  uint32_t kind;
  uint8_t copyKind, srcKind, dstKind, flags;
  uint64_t bytes, start, end;
  uint32_t deviceId, contextId, streamId, correlationId;
} memcpyRecord;

typedef int (*enableFn)(int);
typedef int (*registerFn)(void (*)(uint8_t **, size_t *, size_t *),
                          void (*)(void *, uint32_t, uint8_t *, size_t, size_t));
typedef int (*nextFn)(uint8_t *, size_t, void **);
typedef int (*flushFn)(uint32_t);
typedef int (*timestampFn)(uint64_t *);

static nextFn nextRecord;
static flushFn flushAll;
static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

// Names seen so far, interned by pointer first (CUPTI reuses its strings)
// and by content second.
#define MAXNAMES 65536
static const char *namePtr[MAXNAMES];
static char *nameText[MAXNAMES];
static int names;

static int nameID(const char *name) {
  if (!name) name = "?";
  for (int i = names - 1; i >= 0; i--)
    if (namePtr[i] == name) return i;
  for (int i = names - 1; i >= 0; i--)
    if (strcmp(nameText[i], name) == 0) return i;
  if (names == MAXNAMES) return MAXNAMES - 1;
  namePtr[names] = name;
  nameText[names] = strdup(name);
  fprintf(out, "n,%d,%s\n", names, name);
  return names++;
}

static void requested(uint8_t **buffer, size_t *size, size_t *maxRecords) {
  *size = 8 << 20;
  *buffer = aligned_alloc(8, *size);
  *maxRecords = 0;
}

static void completed(void *ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
  (void)ctx;
  (void)stream;
  (void)size;
  void *rec = NULL;
  pthread_mutex_lock(&lock);
  while (valid > 0 && nextRecord(buffer, valid, &rec) == 0) {
    uint32_t kind = *(uint32_t *)rec;
    if (kind == kindConcurrentKernel) {
      kernelRecord *k = rec;
      fprintf(out, "k,%llu,%llu,%d,%dx%dx%d,%dx%dx%d,%u\n", (unsigned long long)k->start,
              (unsigned long long)k->end, nameID(k->name), k->gridX, k->gridY, k->gridZ, k->blockX,
              k->blockY, k->blockZ, k->streamId);
    } else if (kind == kindMemcpy) {
      memcpyRecord *m = rec;
      fprintf(out, "m,%llu,%llu,%llu,%u,%u\n", (unsigned long long)m->start, (unsigned long long)m->end,
              (unsigned long long)m->bytes, m->copyKind, m->streamId);
    }
  }
  fflush(out);
  pthread_mutex_unlock(&lock);
  free(buffer);
}

static void *flusher(void *arg) {
  (void)arg;
  for (;;) {
    sleep(1);
    flushAll(1); // CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: partial buffers too
  }
  return NULL;
}

static void *cupti(void) {
  const char *env = getenv("KPROF_CUPTI");
  const char *tries[] = {env, "libcupti.so", "libcupti.so.13", "libcupti.so.12"};
  for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
    if (!tries[i]) continue;
    void *h = dlopen(tries[i], RTLD_NOW | RTLD_GLOBAL);
    if (h) return h;
  }
  return NULL;
}

// InitializeInjection is the entry point the CUDA driver calls at cuInit when
// CUDA_INJECTION64_PATH names this library. It returns 1 on success.
int InitializeInjection(void) {
  const char *path = getenv("KPROF_OUT");
  void *h = cupti();
  if (!h) {
    fprintf(stderr, "kprof: cannot load CUPTI (set KPROF_CUPTI to libcupti.so's path): %s\n", dlerror());
    return 0;
  }
  enableFn enable = (enableFn)dlsym(h, "cuptiActivityEnable");
  registerFn reg = (registerFn)dlsym(h, "cuptiActivityRegisterCallbacks");
  timestampFn stamp = (timestampFn)dlsym(h, "cuptiGetTimestamp");
  nextRecord = (nextFn)dlsym(h, "cuptiActivityGetNextRecord");
  flushAll = (flushFn)dlsym(h, "cuptiActivityFlushAll");
  if (!enable || !reg || !stamp || !nextRecord || !flushAll) {
    fprintf(stderr, "kprof: CUPTI lacks the activity API\n");
    return 0;
  }
  out = fopen(path ? path : "kprof.csv", "w");
  if (!out) {
    perror("kprof: KPROF_OUT");
    return 0;
  }
  uint64_t c = 0;
  struct timespec ts;
  stamp(&c);
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(out, "c,%llu,%llu\n", (unsigned long long)c,
          (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
  int rc = reg(requested, completed);
  rc |= enable(kindConcurrentKernel);
  rc |= enable(kindMemcpy);
  if (rc != 0) {
    fprintf(stderr, "kprof: CUPTI refused to enable activity records (%d)\n", rc);
    return 0;
  }
  pthread_t t;
  pthread_create(&t, NULL, flusher, NULL);
  pthread_detach(t);
  fprintf(stderr, "kprof: recording kernels to %s\n", path ? path : "kprof.csv");
  return 1;
}
