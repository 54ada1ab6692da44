/* streamctl.core, clock.c: time: UTC timestamps made and read (ISO 8601, whole seconds), the
   wall clock and the monotonic one. */
#include "core.h"

/* ------------------------------------------------------------------ */
/* Time: UTC "YYYY-MM-DDThh:mm:ssZ" <-> Unix seconds, without timegm  */

static long long days_from_civil(long long y, unsigned m, unsigned d) {
    long long era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, int *y, unsigned *m, unsigned *d) {
    long long era;
    unsigned doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((long long)yoe + era * 400 + (*m <= 2));
}

#define MAX_UNIX 253402300799.0 /* 9999-12-31T23:59:59Z */

static int l_utc_timestamp(lua_State *L) {
    lua_Number t = luaL_checknumber(L, 1);
    long long s, days, rem;
    int y;
    unsigned m, d;
    char out[32];
    luaL_argcheck(L, t >= 0 && t <= MAX_UNIX, 1, "unix seconds must be in 0..253402300799");
    s = (long long)floor(t);
    days = s / 86400;
    rem = s % 86400;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, sizeof(out), "%04d-%02u-%02uT%02d:%02d:%02dZ", y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    lua_pushstring(L, out);
    return 1;
}

/* Wall-clock time in seconds with sub-second precision (CLOCK_REALTIME). */
static int l_now(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* Monotonic seconds, for measuring intervals and pacing (CLOCK_MONOTONIC). */
static int l_monotonic(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int digits(const char *s, int n, int *out) {
    int i, v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int l_parse_utc_timestamp(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int y, mo, d, h, mi, se;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap, dim;
    if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
        !digits(s + 17, 2, &se)) {
        lua_pushnil(L);
        lua_pushliteral(L, "must be UTC time as YYYY-MM-DDThh:mm:ssZ");
        return 2;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    dim = (mo >= 1 && mo <= 12) ? mdays[mo - 1] + (mo == 2 && leap) : 0;
    if (y < 1970 || dim == 0 || d < 1 || d > dim || h > 23 || mi > 59 || se > 59) {
        lua_pushnil(L);
        lua_pushliteral(L, "is not a valid UTC date and time");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                                     (long long)h * 3600 + (long long)mi * 60 + se));
    return 1;
}

const luaL_Reg sc_clock_funcs[] = {
    {"utc_timestamp", l_utc_timestamp},
    {"parse_utc_timestamp", l_parse_utc_timestamp},
    {"now", l_now},
    {"monotonic", l_monotonic},
    {NULL, NULL}};
