/* Several processes sharing one command (docs/scaling.md). Built with MPI (SAL_MPI, when the
 * Makefile finds mpicc) and launched by mpirun or srun, `audit` and `explain` run as one rank of
 * many: the library shards the work through the two collectives below, rank 0 alone prints and
 * writes, and every outcome passes through sal_shard_agree so that all ranks end together with one
 * message. Without MPI, or started without a launcher, everything here is a no-op: one process. */
#include "cli.h"
#include <unistd.h>
#ifdef SAL_MPI
#include <mpi.h>
#endif

static struct {
    bool on;         /* MPI started and more than one rank */
    bool inited;     /* MPI_Init called (finalize at the end) */
    int rank, n, ended;
    sal_shard shard;
    FILE *cap;       /* this rank's stderr while it runs (rank 0 replays it; see cli_mpi_finish) */
    int saved_fd;
    long cut, cut_end; /* the part of it that is this rank's own failure, replaced by the agreed one */
    int nagree;        /* agreements so far (a command that ends before its first still agrees once) */
} g = {.n = 1, .ended = -1, .saved_fd = -1, .cut = -1, .cut_end = -1};

int cli_rank(void) { return g.rank; }
bool cli_launched(void) { return g.inited; }
int cli_nranks(void) { return g.n; }
const sal_shard *cli_shard(void) { return g.on ? &g.shard : NULL; }

#ifdef SAL_MPI
static sal_status mpi_status(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return SAL_OK;
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    fprintf(stderr, "saliency: MPI %s failed on rank %d: %s\n", what, g.rank, s);
    return SAL_ERR_IO;
}

static sal_status allgather(void *user, const void *mine, void *all, size_t size) {
    (void)user;
    return mpi_status(MPI_Allgather(mine, (int)size, MPI_BYTE, all, (int)size, MPI_BYTE, MPI_COMM_WORLD), "allgather");
}

/* In place: each rank's part already sits at its offset. MPI counts and displacements are ints, so
 * a table of 2 GiB or more goes as broadcasts of each rank's part, in pieces of 1 GiB. */
static sal_status allgatherv(void *user, void *buf, const size_t *count, const size_t *offset) {
    (void)user;
    size_t end = 0;
    for (int r = 0; r < g.n; r++) end = offset[r] + count[r] > end ? offset[r] + count[r] : end;
    if (end < (size_t)1 << 31) {
        int *cnt = malloc(2 * (size_t)g.n * sizeof *cnt), *off = cnt ? cnt + g.n : NULL;
        if (!cnt) return SAL_ERR_NOMEM;
        for (int r = 0; r < g.n; r++) cnt[r] = (int)count[r], off[r] = (int)offset[r];
        sal_status st = mpi_status(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, cnt, off, MPI_BYTE, MPI_COMM_WORLD),
                                   "allgatherv");
        free(cnt);
        return st;
    }
    const size_t piece = (size_t)1 << 30;
    for (int r = 0; r < g.n; r++)
        for (size_t done = 0; done < count[r]; done += piece) {
            size_t n = count[r] - done < piece ? count[r] - done : piece;
            sal_status st = mpi_status(MPI_Bcast((char *)buf + offset[r] + done, (int)n, MPI_BYTE, r, MPI_COMM_WORLD),
                                       "broadcast");
            if (st != SAL_OK) return st;
        }
    return SAL_OK;
}

/* Point to point in pieces of 1 GiB (MPI counts are ints). */
static sal_status send_bytes(const char *p, size_t n, int to) {
    for (size_t done = 0; done < n; done += (size_t)1 << 30) {
        size_t k = n - done < (size_t)1 << 30 ? n - done : (size_t)1 << 30;
        sal_status st = mpi_status(MPI_Send(p + done, (int)k, MPI_BYTE, to, 7, MPI_COMM_WORLD), "send");
        if (st != SAL_OK) return st;
    }
    return SAL_OK;
}

static sal_status recv_bytes(char *p, size_t n, int from) {
    for (size_t done = 0; done < n; done += (size_t)1 << 30) {
        size_t k = n - done < (size_t)1 << 30 ? n - done : (size_t)1 << 30;
        sal_status st = mpi_status(MPI_Recv(p + done, (int)k, MPI_BYTE, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "receive");
        if (st != SAL_OK) return st;
    }
    return SAL_OK;
}
#endif

sal_status cli_mpi_gather(const void *mine, size_t n, char ***all, size_t **sizes) {
    *all = NULL, *sizes = NULL;
#ifdef SAL_MPI
    if (!g.on) return SAL_OK;
    /* nothing may fail on one rank alone between two collectives: memory is taken, then agreed */
    uint64_t k = n, *sz = g.rank == 0 ? calloc((size_t)g.n, sizeof *sz) : NULL;
    sal_status gs = sal_shard_agree(&g.shard, g.rank == 0 && !sz ? SAL_ERR_NOMEM : SAL_OK, "out of memory");
    if (gs == SAL_OK) gs = mpi_status(MPI_Gather(&k, 1, MPI_UINT64_T, sz, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "gather");
    if (gs != SAL_OK) {
        free(sz);
        return gs;
    }
    /* rank 0 makes room for every part before anyone sends: a failure here is agreed, not a hang */
    char **parts = NULL;
    sal_status st = SAL_OK;
    if (g.rank == 0) {
        parts = calloc((size_t)g.n, sizeof *parts);
        st = parts ? SAL_OK : SAL_ERR_NOMEM;
        for (int r = 0; st == SAL_OK && r < g.n; r++)
            if (!(parts[r] = malloc(sz[r] ? (size_t)sz[r] : 1))) st = SAL_ERR_NOMEM;
    }
    st = sal_shard_agree(&g.shard, st, "out of memory gathering the explanations");
    for (int r = 1; st == SAL_OK && r < g.n; r++) {
        if (g.rank == 0) st = recv_bytes(parts[r], (size_t)sz[r], r);
        else if (g.rank == r) st = send_bytes(mine, n, 0);
    }
    if (st == SAL_OK && g.rank == 0 && n) memcpy(parts[0], mine, n);
    if (st != SAL_OK || g.rank != 0) {
        for (int r = 0; parts && r < g.n; r++) free(parts[r]);
        free(parts);
        free(sz);
        return st;
    }
    *all = parts;
    *sizes = (size_t *)sz; /* uint64_t and size_t: the same here (checked below) */
    return SAL_OK;
#else
    (void)mine, (void)n;
    return SAL_OK;
#endif
}
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "sizes travel as uint64");

#ifdef SAL_MPI
/* Launched by mpirun (OpenMPI, MPICH, PMIx) or srun? Only then is MPI started: a plain run of
 * the same binary stays one process and never touches MPI. */
static bool launched(void) {
    const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (getenv(v[i])) return true;
    return false;
}
#endif

void cli_mpi_start(void) {
#ifdef SAL_MPI
    if (!launched()) return;
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return;
    g.inited = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.n);
    if (g.n < 2) return;
    g.on = true;
    g.shard = (sal_shard){.rank = g.rank, .nranks = g.n, .allgather = allgather, .allgatherv = allgatherv,
                          .ended = &g.ended};
    /* every rank's messages are held back: rank 0 prints the agreed outcome (cli_mpi_finish) */
    fflush(stderr);
    g.cap = tmpfile();
    g.saved_fd = g.cap ? dup(2) : -1;
    if (g.saved_fd >= 0) dup2(fileno(g.cap), 2);
#endif
}

/* The last line this rank wrote to stderr, without "saliency CMD: " (the message of its failure). */
static void last_line(const char *text, const char *cmd, char *out, size_t n) {
    size_t len = strlen(text);
    while (len && text[len - 1] == '\n') len--;
    size_t b = len;
    while (b && text[b - 1] != '\n') b--;
    char pre[64];
    snprintf(pre, sizeof pre, "saliency %s: ", cmd);
    if (len - b >= strlen(pre) && !strncmp(text + b, pre, strlen(pre))) b += strlen(pre);
    snprintf(out, n, "%.*s", (int)(len - b), text + b);
}

/* What this rank wrote to stderr so far. Read through the descriptor (pread, not the FILE, whose
 * cached position does not see writes through fd 2). */
static char *captured(void) {
    if (!g.cap) return NULL;
    fflush(stderr);
    off_t n = lseek(fileno(g.cap), 0, SEEK_END);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!s) return NULL;
    ssize_t k = n > 0 ? pread(fileno(g.cap), s, (size_t)n, 0) : 0;
    s[k > 0 ? k : 0] = '\0';
    return s;
}

int cli_mpi_agree(const char *cmd, int rc) {
    if (!g.on) return rc;
    if (g.ended >= 0) return 1; /* an exchange already ended the run on every rank */
    g.nagree++;
    char msg[1000] = "failed", *text = rc == 1 ? captured() : NULL;
    if (text) {
        last_line(text, cmd, msg, sizeof msg);
        /* its own message gives way to the agreed one (cli_mpi_finish) */
        size_t len = strlen(text);
        while (len && text[len - 1] == '\n') len--;
        while (len && text[len - 1] != '\n') len--;
        g.cut = (long)len;
    }
    free(text);
    sal_status st = sal_shard_agree(&g.shard, rc == 1 ? SAL_ERR_ARG : SAL_OK, msg);
    if (st == SAL_OK) return rc;
    fflush(stderr);
    g.cut_end = (long)lseek(fileno(g.cap), 0, SEEK_END);
    fprintf(stderr, "saliency %s: %s\n", cmd, sal_last_error());
    return 1;
}

int cli_mpi_finish(const char *cmd, int rc) {
    if (!g.on || !g.cap) return rc;
    if (!g.nagree) rc = cli_mpi_agree(cmd, rc); /* it ended before agreeing: usage errors */
    char *text = captured();
    dup2(g.saved_fd, 2);
    close(g.saved_fd);
    fclose(g.cap);
    g.cap = NULL;
    /* rank 0's notes, and the one message that ended the run (its own line for it left out) */
    if (g.rank == 0 && text) {
        if (g.cut >= 0 && g.cut_end >= g.cut) {
            fwrite(text, 1, (size_t)g.cut, stderr);
            fputs(text + g.cut_end, stderr);
        } else {
            fputs(text, stderr);
        }
    }
    free(text);
    return rc;
}

void cli_mpi_end(void) {
#ifdef SAL_MPI
    if (g.inited) MPI_Finalize();
#endif
}
