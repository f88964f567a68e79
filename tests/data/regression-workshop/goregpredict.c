/* The regression workshop's predictor, in C: reads -inModelDir/model.json (goregtrain's), and for each JSON
   file of attributes in -inVarDir ({"age": ..., "bmi": ..., "ltg": ...}) writes -outDir/<file> with
   {"predicted_diabetes_progression": y}. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(1); }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

static double field(const char *json, const char *name, int *found) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(json, key);
    *found = at != NULL;
    return at ? atof(at + strlen(key)) : 0.0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *var_dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-inModelDir=", 12)) model_dir = argv[i] + 12;
        else if (!strncmp(argv[i], "-inVarDir=", 10)) var_dir = argv[i] + 10;
        else if (!strncmp(argv[i], "-outDir=", 8)) out = argv[i] + 8;
    }
    if (!model_dir || !var_dir || !out) { fprintf(stderr, "usage: goregpredict -inModelDir= -inVarDir= -outDir=\n"); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", model_dir);
    char *model = slurp(path);
    int ok;
    double intercept = field(model, "intercept", &ok);
    DIR *d = opendir(var_dir);
    if (!d) { perror(var_dir); return 1; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", var_dir, e->d_name);
        char *vars = slurp(path);
        double y = intercept;
        for (const char *c = strstr(model, "\"name\": \""); c; c = strstr(c + 1, "\"name\": \"")) {
            char name[64] = {0};
            sscanf(c + 9, "%63[^\"]", name);
            const char *coef = strstr(c, "\"coefficient\":");
            int have;
            double x = field(vars, name, &have);
            if (!have) { fprintf(stderr, "%s has no %s\n", path, name); return 1; }
            y += atof(coef + 14) * x;
        }
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        FILE *f = fopen(path, "w");
        if (!f) { perror(path); return 1; }
        fprintf(f, "{\"predicted_diabetes_progression\": %.2f}\n", y);
        fclose(f);
        free(vars);
    }
    closedir(d);
    return 0;
}
