//! `--flag=value` as well as `--flag value` on every example's command line (included with
//! `#[path]`).

/// Split each `--flag=value` argument into `--flag` and `value` (at the first `=`); every
/// other argument is kept as it is.
pub fn expand(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && flag.len() > 2 => {
                out.push(flag.to_owned());
                out.push(value.to_owned());
            }
            _ => out.push(a),
        }
    }
    out
}
