//! Directive handlers: httpd calls one of these per directive; they collect
//! the arguments and let `md_engine::config::ModConfig` do the rest.

use crate::apr;
use crate::conf;
use crate::ffi;
use md_engine::config::{ArgForm, Ctx, Directive};
use std::os::raw::{c_char, c_int, c_void};

/// The directive a command_rec stands for (its `cmd_data`, an index into
/// `Directive::ALL`).
fn directive_of(cmd: &ffi::cmd_parms) -> Option<Directive> {
    // SAFETY: cmd->cmd points into our static command table.
    let info = unsafe { cmd.cmd.as_ref() }?.cmd_data as usize;
    Directive::ALL.get(info).copied()
}

/// Whether the directive sits inside an `<MDomain>`/`<MDomainSet>` section.
fn in_section(cmd: &ffi::cmd_parms) -> bool {
    // SAFETY: the directive tree is alive while httpd processes it; parent
    // links end in NULL.
    unsafe {
        let mut d = cmd
            .directive
            .as_ref()
            .map_or(std::ptr::null_mut(), |d| d.parent);
        while let Some(dir) = d.as_ref() {
            let name = apr::str_or_empty(dir.directive);
            if name.eq_ignore_ascii_case("<MDomainSet") || name.eq_ignore_ascii_case("<MDomain") {
                return true;
            }
            d = dir.parent;
        }
    }
    false
}

fn ctx(cmd: &ffi::cmd_parms) -> Ctx {
    // SAFETY: ap_server_root is set by httpd before any directive runs;
    // the directive's filename lives in the config pool.
    unsafe {
        Ctx {
            server_root: apr::str_or_empty(ffi::ap_server_root),
            dump_config: ffi::ap_exists_config_define(c"DUMP_CONFIG".as_ptr()) != 0,
            file: cmd.directive.as_ref().map(|d| {
                (
                    apr::str_or_empty(d.filename),
                    u32::try_from(d.line_num).unwrap_or(0),
                )
            }),
        }
    }
}

fn error(cmd: &ffi::cmd_parms, msg: &str) -> *const c_char {
    // SAFETY: cmd->pool is the live configuration pool.
    unsafe { apr::pstrdup(cmd.pool, msg) }
}

/// `<MDomain ...>` / `<MDomainSet ...>`: opens the section, has httpd walk
/// its body (whose directives come back into `handle`), closes it.
///
/// # Safety
/// `cmd` is httpd's valid cmd_parms of the section directive.
unsafe fn section(
    cmd: *mut ffi::cmd_parms,
    state: &conf::ModState,
    d: Directive,
    raw: &str,
    inside: bool,
    context: &Ctx,
) -> *const c_char {
    // SAFETY: forwarded contract.
    let cmdr = unsafe { &mut *cmd };
    if let Err(e) = state.lock().config.begin_section(d, raw, inside, context) {
        return error(cmdr, &e);
    }
    // The lock is released while httpd walks the section body.
    // SAFETY: walking the children of the current directive with the same
    // parms, as httpd's own section handlers do.
    let walk_err = unsafe {
        let first = cmdr
            .directive
            .as_ref()
            .map_or(std::ptr::null_mut(), |x| x.first_child);
        ffi::ap_walk_config(first, cmd, cmdr.context)
    };
    if let Err(e) = state.lock().config.end_section(walk_err.is_null()) {
        return error(cmdr, &e);
    }
    walk_err
}

/// Shared body of every handler.
///
/// # Safety
/// `cmd` is the cmd_parms httpd passed to the handler.
unsafe fn handle(cmd: *mut ffi::cmd_parms, args: Vec<String>) -> *const c_char {
    // SAFETY: httpd passes a valid cmd_parms for the duration of the call.
    let Some(cmdr) = (unsafe { cmd.as_mut() }) else {
        return c"mod_md: no command parameters".as_ptr();
    };
    let Some(d) = directive_of(cmdr) else {
        return error(cmdr, "mod_md: unknown directive");
    };
    // The C module forbids <Directory> and <Location> (not <Files>/<If>):
    // configurations it accepts must keep loading.
    // SAFETY: valid cmd_parms; returns NULL or a pool string.
    let ctx_err =
        unsafe { ffi::ap_check_cmd_context(cmd, ffi::NOT_IN_DIRECTORY | ffi::NOT_IN_LOCATION) };
    if !ctx_err.is_null() {
        return ctx_err;
    }
    let inside = in_section(cmdr);
    let context = ctx(cmdr);
    // SAFETY: cmd->server is the server being configured; its config was
    // created by create_server_config.
    let Some(srv) = (unsafe { conf::srv_conf(cmdr.server) }) else {
        return error(cmdr, "mod_md: server configuration missing");
    };
    // SAFETY: the state lives as long as the configuration pool.
    let Some(state) = (unsafe { srv.state.as_ref() }) else {
        return error(cmdr, "mod_md: module state missing");
    };
    if d.form() == ArgForm::Raw && matches!(d, Directive::Section | Directive::SectionSet) {
        let raw = args.first().cloned().unwrap_or_default();
        // SAFETY: forwarded from httpd's call.
        return unsafe { section(cmd, state, d, &raw, inside, &context) };
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut st = state.lock();
    match st
        .config
        .apply(&mut srv.settings, d, &argv, inside, &context)
    {
        Ok(()) => std::ptr::null(),
        Err(e) => error(cmdr, &e),
    }
}

/// # Safety
/// Called by httpd with valid arguments for a TAKE1 or RAW_ARGS directive
/// (one string: the argument, or the raw rest of the line).
pub unsafe extern "C" fn take1(
    cmd: *mut ffi::cmd_parms,
    _mconfig: *mut c_void,
    w: *const c_char,
) -> *const c_char {
    crate::guard::guard("directive", c"mod_md: internal error".as_ptr(), || {
        // SAFETY: w is a pool string from httpd.
        let a = unsafe { apr::str_or_empty(w) };
        // SAFETY: forwarded.
        unsafe { handle(cmd, vec![a]) }
    })
}

/// # Safety
/// Called by httpd with valid arguments for a TAKE2/TAKE12 directive.
pub unsafe extern "C" fn take2(
    cmd: *mut ffi::cmd_parms,
    _mconfig: *mut c_void,
    w: *const c_char,
    w2: *const c_char,
) -> *const c_char {
    crate::guard::guard("directive", c"mod_md: internal error".as_ptr(), || {
        // SAFETY: w, w2 are NULL or pool strings from httpd.
        let args: Vec<String> = unsafe { [apr::opt_str(w), apr::opt_str(w2)] }
            .into_iter()
            .flatten()
            .collect();
        // SAFETY: forwarded.
        unsafe { handle(cmd, args) }
    })
}

/// # Safety
/// Called by httpd with valid arguments for a TAKE_ARGV directive.
pub unsafe extern "C" fn argv(
    cmd: *mut ffi::cmd_parms,
    _mconfig: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    crate::guard::guard("directive", c"mod_md: internal error".as_ptr(), || {
        let n = usize::try_from(argc).unwrap_or(0);
        let args = (0..n)
            // SAFETY: argv holds argc pool strings.
            .filter_map(|i| unsafe { apr::opt_str(*argv.add(i)) })
            .collect();
        // SAFETY: forwarded.
        unsafe { handle(cmd, args) }
    })
}
