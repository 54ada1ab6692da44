/*
 * The floor under a call's exchange, for bench/percall.lua: libcurl alone,
 * from C, with nothing of streamctl around it. One easy handle kept for the
 * run (one kept-alive connection), the fewest options a request needs (its
 * URL, POST with an empty body, a write callback that drops the answer),
 * the requests signed beforehand by streamctl and read from a file, one URL
 * a line. The first WARM lines warm the connection; the CPU (user + system,
 * getrusage) of the rest is printed in microseconds a request. Every answer
 * must be a 200, or it says so and fails.
 *
 *   percall_floor FILE WARM
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>

static size_t drop(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return size * n;
}

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    FILE *f;
    CURL *c;
    char line[4096];
    long warm, done = 0, failed = 0;
    double t0 = 0;
    if (argc != 3 || (warm = strtol(argv[2], NULL, 10)) < 0) {
        fprintf(stderr, "usage: percall_floor FILE WARM\n");
        return 2;
    }
    if ((f = fopen(argv[1], "r")) == NULL) {
        perror(argv[1]);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c = curl_easy_init()) == NULL) {
        fprintf(stderr, "percall_floor: libcurl did not start\n");
        fclose(f);
        return 1;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop);
    while (fgets(line, sizeof line, f) != NULL) {
        long status = 0;
        line[strcspn(line, "\r\n")] = '\0';
        if (done == warm) t0 = cpu_seconds();
        curl_easy_setopt(c, CURLOPT_URL, line);
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
            failed++;
        done++;
    }
    fclose(f);
    if (done <= warm || failed > 0) {
        fprintf(stderr, "percall_floor: %ld requests, %ld failed (warm-up: %ld)\n", done, failed, warm);
        return 1;
    }
    printf("%.2f\n", (cpu_seconds() - t0) / (double)(done - warm) * 1e6);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return 0;
}
