/*
 * main.c - `arca`: argument parsing and dispatch.
 */
#include "cli/cli.h"
#include "core/cancel.h"
#include "core/log.h"
#include "core/units.h"
#include "backup/policy.h"
#include "storage/multiread.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_main[] =
    "usage: arca COMMAND [OPTIONS] ARGS\n"
    "\n"
    "One-shot commands (no server needed):\n"
    "  ls REMOTE          list files with size and modification time\n"
    "  copy SRC DST       copy new and changed files from SRC to DST\n"
    "  sync SRC DST       make DST identical to SRC (also deletes what SRC lacks)\n"
    "  check SRC DST      compare SRC and DST by size and content hash\n"
    "  backup SRC DST     back SRC up to DST as a new run (archive mode)\n"
    "  runs DST           list the backup runs at DST\n"
    "  restore DST TARGET restore a run of DST into TARGET\n"
    "  verify DST         check a run of DST (--read-data: every byte)\n"
    "  prune DST          forget runs by a retention policy (--keep-...)\n"
    "  version            print the version\n"
    "\n"
    "REMOTE is a local path, s3://bucket[/prefix], sftp://user@host[:port]/path,\n"
    "smb://[domain;]user@host[:port]/share/path, or name:path for a remote defined\n"
    "in the config file (see docs/REMOTES.md).\n"
    "\n"
    "Run 'arca COMMAND --help' for the options of a command.\n"
    "Exit codes: 0 ok, 1 check found differences, 2 usage, 3 partial (some files\n"
    "failed), 4 config, 5 not found, 6 credentials refused, 7 permission denied,\n"
    "8 network/TLS, 9 local I/O, 10 protocol, 11 refused by a safety check,\n"
    "12 internal, 13 destination locked, 14 stored data corrupt, 130 interrupted\n"
    "(docs/CLI.md).\n";

static const char usage_common[] =
    "\n"
    "Common options:\n"
    "  --config FILE            config file (default ~/.config/arca/config, mode 0600)\n"
    "  --json                   print events as JSON lines on stdout (docs/EVENTS.md)\n"
    "  -v, --verbose            more output (repeat for more)\n"
    "  -q, --quiet              only errors\n"
    "\n"
    "S3 options (override the remote's config section and AWS_* variables):\n"
    "  --endpoint URL           S3 endpoint, e.g. https://ACCOUNT.r2.cloudflarestorage.com\n"
    "  --region NAME            region (R2: auto; default us-east-1)\n"
    "  --access-key-id ID       access key id (secrets never go on the command line)\n"
    "  --secret-file FILE       read the secret access key from FILE (mode 0600)\n"
    "  --ca-cert FILE           trust the CA certificates in FILE (PEM)\n"
    "  --path-style             bucket in the path (default for non-AWS endpoints)\n"
    "  --virtual-host           bucket in the host name (default for AWS)\n"
    "  --s3-part-size SIZE      multipart part size (default 16M)\n"
    "  --s3-upload-concurrency N  parts uploaded at once per file (default 4)\n"
    "  --retry-timeout SECONDS  give up retrying a request after this long (default 30)\n"
    "\n"
    "SFTP options (override the remote's config section):\n"
    "  --key-file FILE          private key (ed25519 or ECDSA; default ~/.ssh/id_ed25519,\n"
    "                           ~/.ssh/id_ecdsa); its passphrase via --secret-file or\n"
    "                           ARCA_SFTP_KEY_PASSPHRASE\n"
    "  --known-hosts FILE       known_hosts file (default ~/.ssh/known_hosts)\n"
    "  --host-fingerprint FP    accept only this host key (SHA256:...)\n"
    "  --follow-symlinks        list and copy what symlinks point to\n"
    "SFTP and SMB passwords: config file, --secret-file, ARCA_SFTP_PASSWORD or\n"
    "ARCA_SMB_PASSWORD, or a prompt on the terminal.\n";

static const char usage_transfer[] =
    "\n"
    "Transfer options:\n"
    "  --transfers N            files in flight at once (default 4)\n"
    "  --read-streams N         read a large SFTP file as N ranges at once (default 4,\n"
    "                           1 = one stream)\n"
    "  --read-stream-cutoff SIZE  files from this size on use --read-streams (default 64M)\n"
    "  --bwlimit RATE           total bandwidth limit, binary units: 10M = 10 MiB/s\n"
    "  --dry-run                show what would change, change nothing\n"
    "  --checksum               compare content hashes instead of size + mtime\n"
    "  --progress               show a live progress line (on a terminal)\n"
    "  --create-bucket          create the destination bucket if it does not exist\n"
    "  --sha256                 put each transferred file's SHA-256 in its event\n"
    "  --max-delete N           sync: refuse to delete more than N files\n"
    "  --allow-empty-source     sync: allow deleting everything when SRC lists no files\n";

static const struct {
    const char *name;
    const char *synopsis;
    int nargs;
    bool transfer;
} commands[] = {
    {"ls",
     "usage: arca ls REMOTE [OPTIONS]\n\nList every file under REMOTE, recursively, in byte order "
     "of the path.\n",
     1, false},
    {"copy",
     "usage: arca copy SRC DST [OPTIONS]\n\nCopy files from SRC to DST. Files already identical at "
     "DST (same size and\nmtime, or same hash) are not transferred again. Nothing is deleted.\n",
     2, true},
    {"sync",
     "usage: arca sync SRC DST [OPTIONS]\n\nMake DST identical to SRC: copy new and changed files, "
     "then delete files\nthat DST has and SRC lacks. Deletions happen only after every "
     "transfer\nsucceeded and both listings completed.\n",
     2, true},
    {"check",
     "usage: arca check SRC DST [OPTIONS]\n\nCompare SRC and DST by size and content hash (never "
     "by mtime). Prints each\ndifference; exits 1 when there is any.\n",
     2, true},
    {"backup",
     "usage: arca backup SRC DST [--mode archive|mirror] [--compression zstd|gzip] "
     "[OPTIONS]\n\n"
     "Back SRC up to DST as a new run (docs/FORMAT.md). Archive mode (the default)\n"
     "writes one compressed pax tar with a SHA256SUMS file and a manifest, streamed.\n"
     "Mirror mode keeps current/ a plain copy of SRC and moves what it replaces or\n"
     "deletes to versions/<run>/. The manifest is written last; the destination is\n"
     "locked while the run writes. --max-delete and --allow-empty-source apply to\n"
     "mirror mode.\n",
     2, true},
    {"runs",
     "usage: arca runs DST [--json]\n\nList the backup runs at DST (a run exists when its "
     "manifest does): id,\nstart time, mode, files, bytes, status.\n",
     1, false},
    {"restore",
     "usage: arca restore DST TARGET [--run ID] [--include GLOB]... [OPTIONS]\n\n"
     "Restore a run of DST (default: the latest) into TARGET, a local folder or a\n"
     "remote. Every file is checked against its SHA-256 in the manifest; a mismatch\n"
     "stops the restore naming the object. --include restores only the paths (or\n"
     "directories) matching GLOB; repeat it for more.\n",
     2, false},
    {"verify",
     "usage: arca verify DST [--run ID] [--read-data] [--against SRC] [OPTIONS]\n\n"
     "Check a run of DST (default: the latest): its manifest is whole and well formed\n"
     "and its archive is there with the right size. --read-data also reads every\n"
     "byte back: the archive's SHA-256 and each file's against the manifest.\n"
     "Exit 14 when anything fails its check. --against SRC compares the run with\n"
     "the live source instead (size, mtime, link targets; --read-data: SHA-256)\n"
     "and exits 1 when they differ.\n",
     1, false},
    {"prune",
     "usage: arca prune DST --keep-... [--keep-min N] [--dry-run] [OPTIONS]\n\n"
     "Forget the runs of DST that no rule keeps (restic's rules and words):\n"
     "  --keep-last N, --keep-hourly N, --keep-daily N, --keep-weekly N,\n"
     "  --keep-monthly N, --keep-yearly N, --keep-within DURATION (e.g. 30d, 1y6m),\n"
     "  --keep-within-hourly/-daily/-weekly/-monthly/-yearly DURATION.\n"
     "The newest run is always kept, and at least --keep-min runs (default 3).\n"
     "A forgotten run's manifest is deleted first, then its data. --dry-run only\n"
     "shows the choice.\n",
     1, false},
};

enum {
    OPT_CONFIG = 1000,
    OPT_JSON,
    OPT_ENDPOINT,
    OPT_REGION,
    OPT_ACCESS_KEY_ID,
    OPT_SECRET_FILE,
    OPT_CA_CERT,
    OPT_PATH_STYLE,
    OPT_VIRTUAL_HOST,
    OPT_PART_SIZE,
    OPT_UPLOAD_CONC,
    OPT_RETRY_TIMEOUT,
    OPT_TRANSFERS,
    OPT_BWLIMIT,
    OPT_DRY_RUN,
    OPT_CHECKSUM,
    OPT_PROGRESS,
    OPT_CREATE_BUCKET,
    OPT_MAX_DELETE,
    OPT_ALLOW_EMPTY,
    OPT_HELP,
    OPT_SECRET_IN_FLAG,
    OPT_SHA256,
    OPT_KEY_FILE,
    OPT_KNOWN_HOSTS,
    OPT_HOST_FP,
    OPT_FOLLOW,
    OPT_READ_STREAMS,
    OPT_MODE,
    OPT_COMPRESSION,
    OPT_RUN,
    OPT_INCLUDE,
    OPT_READ_DATA,
    OPT_KEEP_COUNT,
    OPT_KEEP_WITHIN,
    OPT_KEEP_MIN,
    OPT_AGAINST,
    OPT_READ_CUTOFF,
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"region", required_argument, NULL, OPT_REGION},
    {"access-key-id", required_argument, NULL, OPT_ACCESS_KEY_ID},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"ca-cert", required_argument, NULL, OPT_CA_CERT},
    {"path-style", no_argument, NULL, OPT_PATH_STYLE},
    {"virtual-host", no_argument, NULL, OPT_VIRTUAL_HOST},
    {"s3-part-size", required_argument, NULL, OPT_PART_SIZE},
    {"s3-upload-concurrency", required_argument, NULL, OPT_UPLOAD_CONC},
    {"retry-timeout", required_argument, NULL, OPT_RETRY_TIMEOUT},
    {"transfers", required_argument, NULL, OPT_TRANSFERS},
    {"read-streams", required_argument, NULL, OPT_READ_STREAMS},
    {"mode", required_argument, NULL, OPT_MODE},
    {"compression", required_argument, NULL, OPT_COMPRESSION},
    {"run", required_argument, NULL, OPT_RUN},
    {"include", required_argument, NULL, OPT_INCLUDE},
    {"read-data", no_argument, NULL, OPT_READ_DATA},
    {"keep-last", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-hourly", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-daily", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-weekly", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-monthly", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-yearly", required_argument, NULL, OPT_KEEP_COUNT},
    {"keep-within", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-within-hourly", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-within-daily", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-within-weekly", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-within-monthly", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-within-yearly", required_argument, NULL, OPT_KEEP_WITHIN},
    {"keep-min", required_argument, NULL, OPT_KEEP_MIN},
    {"against", required_argument, NULL, OPT_AGAINST},
    {"read-stream-cutoff", required_argument, NULL, OPT_READ_CUTOFF},
    {"bwlimit", required_argument, NULL, OPT_BWLIMIT},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"checksum", no_argument, NULL, OPT_CHECKSUM},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"create-bucket", no_argument, NULL, OPT_CREATE_BUCKET},
    {"max-delete", required_argument, NULL, OPT_MAX_DELETE},
    {"allow-empty-source", no_argument, NULL, OPT_ALLOW_EMPTY},
    {"sha256", no_argument, NULL, OPT_SHA256},
    {"help", no_argument, NULL, OPT_HELP},
    {"secret-access-key", required_argument, NULL, OPT_SECRET_IN_FLAG},
    {"secret", required_argument, NULL, OPT_SECRET_IN_FLAG},
    {"password", required_argument, NULL, OPT_SECRET_IN_FLAG},
    {"passphrase", required_argument, NULL, OPT_SECRET_IN_FLAG},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"known-hosts", required_argument, NULL, OPT_KNOWN_HOSTS},
    {"host-fingerprint", required_argument, NULL, OPT_HOST_FP},
    {"follow-symlinks", no_argument, NULL, OPT_FOLLOW},
    {NULL, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    cancel_request();
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "arca: %s\n", msg);
    return EXIT_USAGE;
}

static int parse_int(const char *s, const char *what, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        fprintf(stderr, "arca: %s '%s' must be a whole number from %ld to %ld\n", what, s, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("arca %s\n", ARCA_VERSION);
        return EXIT_OK;
    }
    int ci = -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name))
            ci = (int)i;
    if (ci < 0) {
        fprintf(stderr, "arca: unknown command '%s'; run 'arca --help' for the list\n", cmd);
        return EXIT_USAGE;
    }

    struct cli c;
    memset(&c, 0, sizeof(c));
    c.command = cmd;
    c.rflags.path_style = -1;
    c.max_delete = -1;
    c.transfers = 4;
    int opt;
    long v;
    struct err e;
    err_clear(&e);
    optind = 2;
    policy_init(&c.policy);
    int li = 0;
    while ((opt = getopt_long(argc, argv, "vq", long_opts, &li)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(commands[ci].synopsis, stdout);
            if (commands[ci].transfer)
                fputs(usage_transfer, stdout);
            fputs(usage_common, stdout);
            return EXIT_OK;
        case OPT_CONFIG:
            c.config_path = optarg;
            c.config_given = true;
            break;
        case OPT_JSON:
            c.json = true;
            break;
        case 'v':
            c.verbose = c.verbose < 0 ? 1 : c.verbose + 1;
            break;
        case 'q':
            c.verbose = -1;
            break;
        case OPT_ENDPOINT:
            c.rflags.endpoint = optarg;
            break;
        case OPT_REGION:
            c.rflags.region = optarg;
            break;
        case OPT_ACCESS_KEY_ID:
            c.rflags.access_key_id = optarg;
            break;
        case OPT_SECRET_FILE:
            c.rflags.secret_file = optarg;
            break;
        case OPT_CA_CERT:
            c.rflags.ca_cert = optarg;
            break;
        case OPT_PATH_STYLE:
            c.rflags.path_style = 1;
            break;
        case OPT_VIRTUAL_HOST:
            c.rflags.path_style = 0;
            break;
        case OPT_PART_SIZE:
            if (units_parse_size(optarg, "--s3-part-size", &c.rflags.part_size, &e))
                return usage_error(e.msg);
            break;
        case OPT_UPLOAD_CONC:
            if (parse_int(optarg, "--s3-upload-concurrency", 1, 64, &v))
                return EXIT_USAGE;
            c.rflags.upload_concurrency = (int)v;
            break;
        case OPT_RETRY_TIMEOUT:
            if (parse_int(optarg, "--retry-timeout", 1, 86400, &v))
                return EXIT_USAGE;
            c.rflags.retry_timeout = (double)v;
            break;
        case OPT_TRANSFERS:
            if (parse_int(optarg, "--transfers", 1, 256, &v))
                return EXIT_USAGE;
            c.transfers = (int)v;
            break;
        case OPT_MODE:
            c.mode = optarg;
            break;
        case OPT_COMPRESSION:
            c.compression = optarg;
            break;
        case OPT_KEEP_COUNT: {
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", long_opts[li].name);
            if (parse_int(optarg, flag, 1, 1000000, &v))
                return EXIT_USAGE;
            const char *k = long_opts[li].name + strlen("keep-");
            int *slot = !strcmp(k, "last")      ? &c.policy.keep_last
                        : !strcmp(k, "hourly")  ? &c.policy.keep_hourly
                        : !strcmp(k, "daily")   ? &c.policy.keep_daily
                        : !strcmp(k, "weekly")  ? &c.policy.keep_weekly
                        : !strcmp(k, "monthly") ? &c.policy.keep_monthly
                                                : &c.policy.keep_yearly;
            *slot = (int)v;
            break;
        }
        case OPT_KEEP_WITHIN: {
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", long_opts[li].name);
            const char *k = long_opts[li].name + strlen("keep-within");
            struct policy_duration *d = !*k                      ? &c.policy.keep_within
                                        : !strcmp(k, "-hourly")  ? &c.policy.keep_within_hourly
                                        : !strcmp(k, "-daily")   ? &c.policy.keep_within_daily
                                        : !strcmp(k, "-weekly")  ? &c.policy.keep_within_weekly
                                        : !strcmp(k, "-monthly") ? &c.policy.keep_within_monthly
                                                                 : &c.policy.keep_within_yearly;
            if (policy_parse_duration(optarg, flag, d, &e))
                return usage_error(e.msg);
            break;
        }
        case OPT_KEEP_MIN:
            if (parse_int(optarg, "--keep-min", 0, 1000000, &v))
                return EXIT_USAGE;
            c.policy.keep_min = (int)v;
            break;
        case OPT_AGAINST:
            c.against = optarg;
            break;
        case OPT_READ_DATA:
            c.read_data = true;
            break;
        case OPT_RUN:
            c.run_id = optarg;
            break;
        case OPT_INCLUDE:
            if (c.nincludes >= (int)(sizeof(c.includes) / sizeof(c.includes[0])))
                return usage_error("too many --include options (at most 64)");
            c.includes[c.nincludes++] = optarg;
            break;
        case OPT_READ_STREAMS:
            if (parse_int(optarg, "--read-streams", 1, MULTIREAD_MAX_STREAMS, &v))
                return EXIT_USAGE;
            c.read_streams = (int)v;
            break;
        case OPT_READ_CUTOFF:
            if (units_parse_size(optarg, "--read-stream-cutoff", &c.read_stream_cutoff, &e))
                return usage_error(e.msg);
            if (!c.read_stream_cutoff)
                return usage_error("--read-stream-cutoff must be at least 1 byte");
            break;
        case OPT_BWLIMIT:
            if (units_parse_rate(optarg, "--bwlimit", &c.bwlimit, &e))
                return usage_error(e.msg);
            break;
        case OPT_DRY_RUN:
            c.dry_run = true;
            break;
        case OPT_CHECKSUM:
            c.checksum = true;
            break;
        case OPT_PROGRESS:
            c.progress = true;
            break;
        case OPT_CREATE_BUCKET:
            c.rflags.create_bucket = true;
            break;
        case OPT_MAX_DELETE:
            if (parse_int(optarg, "--max-delete", 0, 1L << 40, &v))
                return EXIT_USAGE;
            c.max_delete = v;
            break;
        case OPT_ALLOW_EMPTY:
            c.allow_empty_source = true;
            break;
        case OPT_SHA256:
            c.report_sha256 = true;
            break;
        case OPT_KEY_FILE:
            c.rflags.key_file = optarg;
            break;
        case OPT_KNOWN_HOSTS:
            c.rflags.known_hosts = optarg;
            break;
        case OPT_HOST_FP:
            c.rflags.host_fingerprint = optarg;
            break;
        case OPT_FOLLOW:
            c.rflags.follow_symlinks = true;
            break;
        case OPT_SECRET_IN_FLAG:
            fprintf(stderr,
                    "arca: secrets are never taken from the command line (other users can "
                    "read it); use --secret-file FILE, the config file or the environment\n");
            return EXIT_USAGE;
        default:
            fprintf(stderr, "arca: run 'arca %s --help' for the options\n", cmd);
            return EXIT_USAGE;
        }
    }
    c.nargs = argc - optind;
    if (c.nargs != commands[ci].nargs) {
        fprintf(stderr, "arca: '%s' takes %d argument%s, got %d; run 'arca %s --help'\n", cmd,
                commands[ci].nargs, commands[ci].nargs == 1 ? "" : "s", c.nargs, cmd);
        return EXIT_USAGE;
    }
    for (int i = 0; i < c.nargs; i++)
        c.args[i] = argv[optind + i];

    log_setup(c.verbose >= 2   ? LOG_DEBUG
              : c.verbose == 1 ? LOG_INFO
              : c.verbose < 0  ? LOG_ERROR
                               : LOG_WARN,
              c.json ? LOG_FORMAT_JSON : LOG_FORMAT_AUTO);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char path[4096];
    if (!c.config_path) {
        config_default_path(path, sizeof(path));
        c.config_path = path;
    }
    int rc;
    if (config_load(&c.cfg, c.config_path, c.config_given, &e)) {
        log_error("%s", e.msg);
        rc = err_exit_status(e.code);
        goto out;
    }
    if (!strcmp(cmd, "ls"))
        rc = cli_cmd_ls(&c);
    else if (!strcmp(cmd, "backup"))
        rc = cli_cmd_backup(&c);
    else if (!strcmp(cmd, "runs"))
        rc = cli_cmd_runs(&c);
    else if (!strcmp(cmd, "restore"))
        rc = cli_cmd_restore(&c);
    else if (!strcmp(cmd, "verify"))
        rc = cli_cmd_verify(&c);
    else if (!strcmp(cmd, "prune"))
        rc = cli_cmd_prune(&c);
    else
        rc = cli_cmd_transfer(&c);
out:
    config_release(&c.cfg);
    log_clear_secrets();
    curl_global_cleanup();
    return rc;
}
