//! The expansion of both attributes, on `proc_macro2` tokens so that it can be unit-tested.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, Path, Token};

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "ringleader::main",
            Kind::Test => "ringleader::test",
        }
    }
}

/// How many cores the body runs with.
enum Cores {
    /// `ringleader::block_on`: a single-core runtime on the calling thread.
    Local,
    /// `Runtime::builder().cores(expr)`, body on core 0.
    Runtime(Expr),
}

/// The parsed options.
struct Options {
    cores: Cores,
    krate: Path,
}

/// Expand `#[ringleader::main(attr)]` or `#[ringleader::test(attr)]` on `item`. Errors
/// become `compile_error!`s next to the unchanged item, so the item's own errors still show.
pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = e.to_compile_error();
            return quote! { #err #item };
        }
    };
    // A bad option still expands with the defaults, so that the only error is about it
    // (not also "`main` is not allowed to be `async`").
    let (opts, opts_err) = match parse_options(kind, attr) {
        Ok(opts) => (opts, None),
        Err(e) => (Options::default(), Some(e.to_compile_error())),
    };
    match expand_fn(kind, &opts, func) {
        Ok(tokens) => quote! { #opts_err #tokens },
        Err(e) => {
            let err = e.to_compile_error();
            quote! { #opts_err #err #item }
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cores: Cores::Local,
            krate: syn::parse_quote!(::ringleader),
        }
    }
}

fn parse_options(kind: Kind, attr: TokenStream) -> syn::Result<Options> {
    let mut opts = Options::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            other => {
                return Err(Error::new(
                    other.span(),
                    format!(
                        "{}: expected `cores = N` or `crate = \"path\"`",
                        kind.name()
                    ),
                ));
            }
        };
        if nv.path.is_ident("cores") {
            opts.cores = parse_cores(kind, nv.value)?;
        } else if nv.path.is_ident("crate") {
            opts.krate = match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => s.parse()?,
                Expr::Path(p) => p.path.clone(),
                other => {
                    return Err(Error::new(
                        other.span(),
                        "`crate` takes a path, as in `crate = \"my_ringleader\"`",
                    ));
                }
            };
        } else {
            let key = &nv.path;
            return Err(Error::new(
                key.span(),
                format!(
                    "{}: unknown option `{}` (expected `cores` or `crate`)",
                    kind.name(),
                    quote!(#key).to_string().replace(' ', "")
                ),
            ));
        }
    }
    Ok(opts)
}

fn parse_cores(kind: Kind, value: Expr) -> syn::Result<Cores> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(n), ..
    }) = &value
    {
        return match n.base10_parse::<usize>()? {
            0 => Err(Error::new(
                n.span(),
                format!("{}: `cores` must be at least 1", kind.name()),
            )),
            1 => Ok(Cores::Local),
            _ => Ok(Cores::Runtime(value)),
        };
    }
    Ok(Cores::Runtime(value))
}

fn expand_fn(kind: Kind, opts: &Options, func: ItemFn) -> syn::Result<TokenStream> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            format!(
                "{}: the function must be `async` (add `async` before `fn`)",
                kind.name()
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            format!("{}: generic functions are not supported", kind.name()),
        ));
    }
    if kind == Kind::Test {
        if !sig.inputs.is_empty() {
            return Err(Error::new(
                sig.inputs.span(),
                "ringleader::test: test functions take no arguments",
            ));
        }
        if let Some(a) = func.attrs.iter().find(|a| a.path().is_ident("test")) {
            return Err(Error::new(
                a.span(),
                "ringleader::test: remove this `#[test]`; `#[ringleader::test]` adds it",
            ));
        }
    }
    // Argument names to forward; only plain `name: Type` patterns can be forwarded.
    let mut args = Vec::with_capacity(sig.inputs.len());
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(Error::new(
                    r.span(),
                    format!("{}: methods (`self`) are not supported", kind.name()),
                ));
            }
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    args.push(p.ident.clone());
                }
                other => {
                    return Err(Error::new(
                        other.span(),
                        format!("{}: use a plain `name: Type` argument here", kind.name()),
                    ));
                }
            },
        }
    }

    let attrs = &func.attrs;
    let vis = &func.vis;
    let body = &func.block;
    let krate = &opts.krate;
    let inner = format_ident!("__ringleader_body", span = Span::mixed_site());
    // The inner fn keeps the whole signature (so `mut` arguments stay mutable there).
    let mut inner_sig = sig.clone();
    inner_sig.ident = inner.clone();
    let mut outer_sig = sig.clone();
    outer_sig.asyncness = None;
    // The outer fn only forwards its arguments: strip `mut` so that no `unused_mut` fires.
    for input in &mut outer_sig.inputs {
        if let FnArg::Typed(t) = input {
            if let Pat::Ident(p) = &mut *t.pat {
                p.mutability = None;
            }
        }
    }
    let run = match &opts.cores {
        Cores::Local => quote! { #krate::block_on(#inner(#(#args),*)) },
        Cores::Runtime(n) => {
            let name = kind.name();
            quote_spanned! {n.span()=>
                {
                    let __cores: usize = #n;
                    let __rt = #krate::Runtime::builder()
                        .cores(__cores)
                        .build()
                        .unwrap_or_else(|e| {
                            ::core::panic!("{}: starting {} cores: {}", #name, __cores, e)
                        });
                    __rt.block_on(move || #inner(#(#args),*))
                }
            }
        }
    };
    let test_attr = match kind {
        Kind::Test => quote! { #[::core::prelude::v1::test] },
        Kind::Main => quote! {},
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #outer_sig {
            #inner_sig #body
            #run
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(kind: Kind, attr: &str, item: &str) -> String {
        expand(kind, attr.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn default_is_block_on() {
        let out = expand_str(Kind::Main, "", "async fn main() { let x = 1; }");
        assert!(out.contains(":: ringleader :: block_on"), "{out}");
        assert!(!out.contains("Runtime"), "{out}");
        assert!(out.contains("fn main ()"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn cores_one_is_local() {
        let out = expand_str(Kind::Main, "cores = 1", "async fn main() {}");
        assert!(out.contains("block_on (__ringleader_body ())"), "{out}");
        assert!(!out.contains("Runtime"), "{out}");
    }

    #[test]
    fn cores_many_builds_a_runtime() {
        let out = expand_str(Kind::Main, "cores = 4", "async fn main() -> u8 { 1 }");
        assert!(out.contains("Runtime :: builder ()"), "{out}");
        assert!(out.contains("let __cores : usize = 4"), "{out}");
        assert!(out.contains("move || __ringleader_body ()"), "{out}");
        assert!(out.contains("fn main () -> u8"), "{out}");
    }

    #[test]
    fn cores_takes_an_expression() {
        let out = expand_str(Kind::Test, "cores = n()", "async fn t() {}");
        assert!(out.contains("let __cores : usize = n ()"), "{out}");
    }

    #[test]
    fn test_adds_the_test_attribute_and_keeps_others() {
        let out = expand_str(Kind::Test, "", "#[should_panic] async fn t() { panic!() }");
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test]"),
            "{out}"
        );
        assert!(out.contains("# [should_panic]"), "{out}");
    }

    #[test]
    fn crate_option_renames_the_path() {
        let out = expand_str(Kind::Main, "crate = \"rl\"", "async fn main() {}");
        assert!(out.contains("rl :: block_on"), "{out}");
        let out = expand_str(Kind::Main, "crate = rl, cores = 2", "async fn main() {}");
        assert!(out.contains("rl :: Runtime"), "{out}");
    }

    #[test]
    fn arguments_are_forwarded_without_mut_outside() {
        let out = expand_str(Kind::Main, "", "async fn run(mut a: u8, b: String) {}");
        assert!(out.contains("fn run (a : u8 , b : String)"), "{out}");
        assert!(
            out.contains("async fn __ringleader_body (mut a : u8"),
            "{out}"
        );
        assert!(out.contains("__ringleader_body (a , b)"), "{out}");
    }

    fn error_of(kind: Kind, attr: &str, item: &str) -> String {
        let out = expand_str(kind, attr, item);
        assert!(out.contains("compile_error"), "expected an error: {out}");
        out
    }

    #[test]
    fn refusals_say_why() {
        assert!(error_of(Kind::Main, "", "fn main() {}").contains("must be `async`"));
        assert!(error_of(Kind::Main, "cores = 0", "async fn main() {}").contains("at least 1"));
        assert!(error_of(Kind::Main, "threads = 2", "async fn main() {}").contains("unknown"));
        assert!(error_of(Kind::Main, "cores", "async fn main() {}").contains("expected"));
        assert!(error_of(Kind::Test, "", "async fn t(x: u8) {}").contains("no arguments"));
        assert!(error_of(Kind::Test, "", "#[test] async fn t() {}").contains("adds it"));
        assert!(error_of(Kind::Main, "", "async fn g<T>(t: T) {}").contains("generic"));
        assert!(error_of(Kind::Main, "", "async fn m(&self) {}").contains("methods"));
        assert!(error_of(Kind::Main, "", "async fn m((a, b): (u8, u8)) {}").contains("plain"));
    }
}
