/* placeholder: replaced by the libcurl transport */
#include "compat.h"
int luaopen_streamctl_curl(lua_State *L) { lua_newtable(L); return 1; }
