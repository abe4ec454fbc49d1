/* The httpd, APR, mod_ssl/core-SSL, mod_watchdog and mod_status API that
 * mod_md in Rust binds to. build.rs runs bindgen over this file; the include
 * paths come from `apxs -q INCLUDEDIR` and `apr-1-config --includedir`. */
#include <apr.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_hooks.h>
#include <apr_optional.h>
#include <apr_optional_hooks.h>
#include <apr_time.h>
#include <apr_errno.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_vhost.h>
#include <http_main.h>
#include <http_ssl.h>
#include <ap_listen.h>
#include <ap_mmn.h>
#include <ap_mpm.h>
#include <unixd.h>
#include <util_cfgtree.h>
#include <mod_status.h>
#include <mod_watchdog.h>
