/*
 * streamctl.core: signing, encoding, nonces and time for streamctl. The
 * module is made of several files, one job each (core.h names them and
 * what they share); this one opens the module and holds secrets and the
 * text checks.
 *
 * No I/O but three small file operations (csrc/file.c: an audit record
 * appended, a state file replaced or read; local files, like nginx's own
 * logs), so it is safe in every nginx phase. Its only process-wide state is
 * the fork watch of the nonce pools (fork_count, forks_seen, fork_once: see
 * nonce.c), set once and read-only to everything but the
 * pthread_atfork child handler; all other state is per Lua state (upvalues,
 * userdata). Every temporary lives in Lua-owned memory (userdata or
 * luaL_Buffer) before anything can raise; copies of secrets are wiped with
 * OPENSSL_cleanse.
 */
#include "core.h"
#include "file.h"
#include "fingerprint.h"

const char sc_hex[] = "0123456789abcdef";
const char sc_hexu[] = "0123456789ABCDEF";

/* ------------------------------------------------------------------ */
/* Secrets: bytes held in a userdata that is wiped when collected.    */

static int secret_new(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    sc_secret *sec = (sc_secret *)lua_newuserdata(L, sizeof(sc_secret) + len);
    sec->len = len;
    sec->v1 = sec->v3 = NULL;
    sec->md5 = sec->sha256 = NULL;
    memcpy(sec->bytes, s, len);
    sec->bytes[len] = '\0';
    luaL_setmetatable(L, SECRET_MT);
    return 1;
}

static int secret_gc(lua_State *L) {
    sc_secret *sec = (sc_secret *)luaL_checkudata(L, 1, SECRET_MT);
    OPENSSL_cleanse(sec->bytes, sec->len);
    sec->len = 0;
#if SC_KEYED_MAC
    EVP_MAC_CTX_free(sec->v1); /* cleanses the keyed state */
    EVP_MAC_CTX_free(sec->v3);
    EVP_MD_CTX_free(sec->md5); /* cleanses the state it held */
    EVP_MD_CTX_free(sec->sha256);
#endif
    sec->v1 = sec->v3 = NULL;
    sec->md5 = sec->sha256 = NULL;
    return 0;
}

static int secret_tostring(lua_State *L) {
    lua_pushliteral(L, "streamctl.secret(redacted)");
    return 1;
}

/* core.is_secret(v): is v a streamctl.secret? */
/* ------------------------------------------------------------------ */
/* Text checks: what a field's value may hold, in one pass.           */

/* Whether the 8 bytes at p are all printable ASCII (0x20 to 0x7E): the
   usual text, passed over a word at a time (a byte below 0x20 borrows
   into its top bit, one above 0x7E carries into it or has it set). */
static int printable8(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
    return (((w - 0x20 * ones) | (w + 0x01 * ones) | w) & tops) == 0;
}

/* text_flaws(s): a number that says what `s` holds that text fields must not:
   1 a CR, LF or NUL; 2 another control character (TAB, DEL, ...); 4 bytes
   that are not UTF-8 (overlong forms, surrogates and code points beyond
   U+10FFFF included); 0 none. Flags are added, so a caller reports the one
   it ranks first. */
static int l_text_flaws(lua_State *L) {
    size_t n, i = 0;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int flaws = 0;
    while (i < n) {
        if (i + 8 <= n && printable8(s + i)) {
            i += 8;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == '\r' || c == '\n' || c == 0) {
                flaws |= 1;
            } else if (c < 0x20 || c == 0x7f) {
                flaws |= 2;
            }
            i++;
            continue;
        }
        {
            size_t len, j;
            unsigned char lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                len = 2;
            } else if (c >= 0xE0 && c <= 0xEF) {
                len = 3;
                if (c == 0xE0) lo = 0xA0;
                if (c == 0xED) hi = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                len = 4;
                if (c == 0xF0) lo = 0x90;
                if (c == 0xF4) hi = 0x8F;
            } else {
                flaws |= 4;
                i++;
                continue;
            }
            if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) {
                flaws |= 4;
                i++;
                continue;
            }
            for (j = 2; j < len; j++) {
                if (s[i + j] < 0x80 || s[i + j] > 0xBF) break;
            }
            if (j < len) {
                flaws |= 4;
                i++;
                continue;
            }
            i += len;
        }
    }
    lua_pushinteger(L, flaws);
    return 1;
}

static int l_is_secret(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, SECRET_MT) != NULL);
    return 1;
}

static int secret_len(lua_State *L) {
    sc_secret *sec = (sc_secret *)luaL_checkudata(L, 1, SECRET_MT);
    lua_pushinteger(L, (lua_Integer)sec->len);
    return 1;
}

/* A secret argument: a plain string or a streamctl.secret. */
const unsigned char *sc_check_secret(lua_State *L, int idx, size_t *len) {
    sc_secret *sec = (sc_secret *)luaL_testudata(L, idx, SECRET_MT);
    if (sec != NULL) {
        *len = sec->len;
        return sec->bytes;
    }
    if (lua_type(L, idx) == LUA_TSTRING)
        return (const unsigned char *)lua_tolstring(L, idx, len);
    luaL_argerror(L, idx, "secret expected (string or streamctl.secret)");
    return NULL;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg secret_methods[] = {
    {"__gc", secret_gc},
    {"__tostring", secret_tostring},
    {"__len", secret_len},
    {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
    {"secret", secret_new},
    {"is_secret", l_is_secret},
    {"text_flaws", l_text_flaws},
    {NULL, NULL}};

int luaopen_streamctl_core(lua_State *L) {
    if (luaL_newmetatable(L, SECRET_MT)) {
        luaL_setfuncs(L, secret_methods, 0);
        lua_pushliteral(L, "streamctl.secret");
        lua_setfield(L, -2, "__name");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    sc_newlib(L, core_funcs);
    luaL_setfuncs(L, sc_encode_funcs, 0);
    luaL_setfuncs(L, sc_sign_v1_funcs, 0);
    luaL_setfuncs(L, sc_sign_v3_funcs, 0);
    luaL_setfuncs(L, sc_sign_zego_funcs, 0);
    luaL_setfuncs(L, sc_digest_funcs, 0);
    luaL_setfuncs(L, sc_cipher_funcs, 0);
    luaL_setfuncs(L, sc_clock_funcs, 0);
    luaL_setfuncs(L, sc_otlp_funcs, 0);
    luaL_setfuncs(L, sc_otlp_queue_funcs, 0);
    luaL_setfuncs(L, sc_bytes_funcs, 0);
    luaL_setfuncs(L, sc_file_funcs, 0);
    luaL_setfuncs(L, sc_lock_funcs, 0);
    sc_fingerprint_open(L);
    sc_nonce_open(L);
    return 1;
}
