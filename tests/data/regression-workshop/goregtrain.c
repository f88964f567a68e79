/* The regression workshop's trainer, in C instead of Go (no Go toolchain here): a statically linked binary
   that, like dwhitena/goregtrain, reads every CSV file in -inDir (diabetes.csv: age,sex,bmi,map,tc,ldl,hdl,
   tch,ltg,glu,y), fits y on bmi (single) or on bmi and ltg (multi, built with -DMULTI) by least squares, and
   writes -outDir/model.json. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MULTI
#define K 2
static const char *NAMES[K] = {"bmi", "ltg"};
static const int COLUMNS[K] = {2, 8};
#else
#define K 1
static const char *NAMES[K] = {"bmi"};
static const int COLUMNS[K] = {2};
#endif

#define ABS(x) ((x) < 0 ? -(x) : (x))

static double xtx[K + 1][K + 1], xty[K + 1];
static long rows;

static void add(const double *x, double y) {
    double v[K + 1] = {1.0};
    for (int i = 0; i < K; i++) v[i + 1] = x[i];
    for (int i = 0; i <= K; i++) {
        xty[i] += v[i] * y;
        for (int j = 0; j <= K; j++) xtx[i][j] += v[i] * v[j];
    }
    rows++;
}

static void read_csv(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(1); }
    char line[4096];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) { first = 0; if (strstr(line, "age")) continue; }
        double cols[16];
        int n = 0;
        for (char *tok = strtok(line, ",\n"); tok && n < 16; tok = strtok(NULL, ",\n")) cols[n++] = atof(tok);
        if (n < 11) continue;
        double x[K];
        for (int i = 0; i < K; i++) x[i] = cols[COLUMNS[i]];
        add(x, cols[10]);
    }
    fclose(f);
}

static void solve(double *beta) { /* Gaussian elimination with partial pivoting */
    double a[K + 1][K + 2];
    for (int i = 0; i <= K; i++) { for (int j = 0; j <= K; j++) a[i][j] = xtx[i][j]; a[i][K + 1] = xty[i]; }
    for (int c = 0; c <= K; c++) {
        int p = c;
        for (int r = c + 1; r <= K; r++) if (ABS(a[r][c]) > ABS(a[p][c])) p = r;
        for (int j = 0; j <= K + 1; j++) { double t = a[c][j]; a[c][j] = a[p][j]; a[p][j] = t; }
        for (int r = 0; r <= K; r++) if (r != c) {
            double m = a[r][c] / a[c][c];
            for (int j = c; j <= K + 1; j++) a[r][j] -= m * a[c][j];
        }
    }
    for (int i = 0; i <= K; i++) beta[i] = a[i][K + 1] / a[i][i];
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-inDir=", 7)) in = argv[i] + 7;
        else if (!strncmp(argv[i], "-outDir=", 8)) out = argv[i] + 8;
    }
    if (!in || !out) { fprintf(stderr, "usage: goregtrain -inDir=DIR -outDir=DIR\n"); return 2; }
    DIR *d = opendir(in);
    if (!d) { perror(in); return 1; }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", in, e->d_name);
        read_csv(path);
    }
    closedir(d);
    if (rows <= K) { fprintf(stderr, "goregtrain: %ld rows are too few to fit\n", rows); return 1; }
    double beta[K + 1];
    solve(beta);
    snprintf(path, sizeof path, "%s/model.json", out);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fprintf(f, "{\"intercept\": %.6f, \"coefficients\": [", beta[0]);
    for (int i = 0; i < K; i++) fprintf(f, "%s{\"name\": \"%s\", \"coefficient\": %.6f}", i ? ", " : "", NAMES[i], beta[i + 1]);
    fprintf(f, "]}\n");
    fclose(f);
    printf("trained on %ld rows\n", rows);
    return 0;
}
