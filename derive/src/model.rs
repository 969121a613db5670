//! The parsed builder struct: its name, the built type's name, its fields and attributes.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Generics, Ident, LitFloat, Token, Type, Visibility};

/// What the derives read from the builder struct.
pub struct Model {
    /// The builder's visibility, given to the built struct too.
    pub vis: Visibility,
    /// The builder (architecture) type.
    pub builder: Ident,
    /// The built (module) type, from `#[built(Name)]`.
    pub built: Ident,
    /// The builder's generics (const parameters, as in `Mlp<const HIDDEN: usize>`).
    pub generics: Generics,
    /// Named fields in declaration order.
    pub fields: Vec<Field>,
    /// `#[shapes(input = .., output = .., params = ..)]`, if given.
    pub shapes: Option<Shapes>,
}

/// One named field of the builder.
pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    /// The whole field's span: generated code about this field points here.
    pub span: Span,
    pub kind: FieldKind,
    /// A custom module's `#[shapes(input = ..)]` on a sub-module: the shape it is given.
    pub input: Option<Type>,
}

/// A sub-module (a builder type) or a parameter tensor (its shape).
pub enum FieldKind {
    Module,
    Param(Box<Init>),
}

/// How a parameter tensor starts out.
pub enum Init {
    Zeros,
    Ones,
    Uniform(Expr, Expr),
    Normal(Expr, Expr),
    FanIn(Expr),
}

/// The model's shape contract.
pub struct Shapes {
    pub input: Type,
    pub output: Option<Type>,
    pub params: Option<Expr>,
    pub span: Span,
}

impl Model {
    /// Reads the struct; `params_allowed` is false for `Sequential`, whose fields run in
    /// order and so must all be modules.
    pub fn parse(input: DeriveInput, derive: &str, params_allowed: bool) -> syn::Result<Self> {
        let span = input.ident.span();
        let fields = match input.data {
            Data::Struct(s) => match s.fields {
                Fields::Named(named) => named.named,
                Fields::Unit => Default::default(),
                Fields::Unnamed(f) => {
                    return Err(syn::Error::new(
                        f.span(),
                        format!("#[derive({derive})] needs named fields: the field names are the parameter names (`conv1.weight`)"),
                    ))
                }
            },
            _ => {
                return Err(syn::Error::new(
                    span,
                    format!("#[derive({derive})] works on structs"),
                ))
            }
        };
        let mut built = None;
        let mut shapes = None;
        for attr in &input.attrs {
            if attr.path().is_ident("built") {
                built = Some(attr.parse_args::<Ident>()?);
            } else if attr.path().is_ident("shapes") {
                let mut s: Shapes = attr.parse_args()?;
                s.span = attr.span();
                shapes = Some(s);
            }
        }
        let built = built.ok_or_else(|| {
            syn::Error::new(
                span,
                format!("#[derive({derive})] needs the built type's name: add `#[built({}Model)]` (or another name) under the derive", input.ident),
            )
        })?;
        for p in input.generics.params.iter() {
            if let syn::GenericParam::Type(t) = p {
                if t.ident == "E" || t.ident == "D" {
                    return Err(syn::Error::new(
                        t.span(),
                        "`E` and `D` name the built type's dtype and device: rename this parameter",
                    ));
                }
            }
        }
        let mut out = Vec::new();
        for f in fields {
            let mut kind = FieldKind::Module;
            let mut field_input = None;
            for attr in &f.attrs {
                if attr.path().is_ident("shapes") {
                    if !params_allowed {
                        return Err(syn::Error::new(
                            attr.span(),
                            format!("#[derive({derive})] chains its fields' shapes itself: put `#[shapes(input = ..)]` on the struct"),
                        ));
                    }
                    let s: Shapes = attr.parse_args()?;
                    field_input = Some(s.input);
                }
                if attr.path().is_ident("param") {
                    if !params_allowed {
                        return Err(syn::Error::new(
                            attr.span(),
                            format!("#[derive({derive})] runs its fields in order, so every field is a layer; parameter tensors need #[derive(CustomModule)] and a forward of your own"),
                        ));
                    }
                    kind = FieldKind::Param(Box::new(attr.parse_args::<ParamArgs>()?.init));
                }
            }
            let span = f.span();
            out.push(Field {
                ident: f.ident.expect("named field"),
                ty: f.ty,
                span,
                kind,
                input: field_input,
            });
        }
        if shapes.is_some() && !input.generics.params.is_empty() {
            return Err(syn::Error::new(
                span,
                "#[shapes(..)] checks one concrete model: write it on a model without generic parameters, or use `assert_shapes!` on an instance such as `Mlp<64>`",
            ));
        }
        Ok(Model {
            vis: input.vis,
            builder: input.ident,
            built,
            generics: input.generics,
            fields: out,
            shapes,
        })
    }

    /// The fields that are sub-modules.
    pub fn modules(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Module))
    }

    /// The built struct's type parameter holding a module field's built type.
    pub fn module_param(field: &Field) -> Ident {
        let name = field.ident.to_string();
        let mut camel = String::from("_");
        let mut upper = true;
        for c in name.trim_start_matches("r#").chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                camel.extend(c.to_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        format_ident!("{}", camel, span = field.ident.span())
    }

    /// The builder's generic arguments as written in a use (`<HIDDEN>`), empty if none.
    pub fn builder_args(&self) -> TokenStream {
        let (_, ty, _) = self.generics.split_for_impl();
        ty.to_token_stream()
    }

    /// The builder's generic parameters (with bounds), without angle brackets.
    pub fn builder_params(&self) -> Vec<TokenStream> {
        self.generics
            .params
            .iter()
            .map(|p| match p {
                // Defaults belong on the struct only.
                syn::GenericParam::Type(t) => {
                    let mut t = t.clone();
                    t.default = None;
                    t.eq_token = None;
                    t.to_token_stream()
                }
                syn::GenericParam::Const(c) => {
                    let mut c = c.clone();
                    c.default = None;
                    c.eq_token = None;
                    c.to_token_stream()
                }
                other => other.to_token_stream(),
            })
            .collect()
    }

    /// The builder's generic arguments without angle brackets (`HIDDEN`).
    pub fn builder_arg_list(&self) -> Vec<TokenStream> {
        self.generics
            .params
            .iter()
            .map(|p| match p {
                syn::GenericParam::Type(t) => t.ident.to_token_stream(),
                syn::GenericParam::Const(c) => c.ident.to_token_stream(),
                syn::GenericParam::Lifetime(l) => l.lifetime.to_token_stream(),
            })
            .collect()
    }

    /// The builder's where-clause predicates.
    pub fn builder_where(&self) -> Vec<TokenStream> {
        self.generics
            .where_clause
            .as_ref()
            .map(|w| w.predicates.iter().map(|p| p.to_token_stream()).collect())
            .unwrap_or_default()
    }

    /// The builder's type parameters, which the built struct keeps in its marker.
    pub fn builder_type_params(&self) -> Vec<Ident> {
        self.generics
            .type_params()
            .map(|t| t.ident.clone())
            .collect()
    }

    /// `Builder<args>` as a type.
    pub fn builder_type(&self) -> TokenStream {
        let (b, args) = (&self.builder, self.builder_args());
        quote!(#b #args)
    }

    /// The model's name in summaries and messages: `Mlp<64>` for `Mlp<HIDDEN = 64>`.
    pub fn name_expr(&self) -> TokenStream {
        let base = self.builder.to_string();
        let consts: Vec<&Ident> = self.generics.const_params().map(|c| &c.ident).collect();
        if consts.is_empty() {
            quote!(::std::string::String::from(#base))
        } else {
            let fmt = format!(
                "{base}<{}>",
                consts.iter().map(|_| "{}").collect::<Vec<_>>().join(", ")
            );
            quote!(::std::format!(#fmt, #(#consts),*))
        }
    }
}

struct ParamArgs {
    init: Init,
}

impl Parse for ParamArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        if key != "init" {
            return Err(syn::Error::new(
                key.span(),
                "expected `init = ...`: zeros, ones, uniform(lo, hi), normal(mean, std) or fan_in(n)",
            ));
        }
        input.parse::<Token![=]>()?;
        let kind: Ident = input.parse()?;
        let args = |input: ParseStream| -> syn::Result<Vec<Expr>> {
            if input.is_empty() {
                return Ok(Vec::new());
            }
            let content;
            syn::parenthesized!(content in input);
            Ok(content
                .parse_terminated(Expr::parse, Token![,])?
                .into_iter()
                .collect())
        };
        let a = args(input)?;
        let want = |n: usize| -> syn::Result<()> {
            if a.len() == n {
                Ok(())
            } else {
                Err(syn::Error::new(
                    kind.span(),
                    format!("`{kind}` takes {n} argument(s)"),
                ))
            }
        };
        let init = match kind.to_string().as_str() {
            "zeros" => want(0).map(|_| Init::Zeros)?,
            "ones" => want(0).map(|_| Init::Ones)?,
            "uniform" => want(2).map(|_| Init::Uniform(a[0].clone(), a[1].clone()))?,
            "normal" => want(2).map(|_| Init::Normal(a[0].clone(), a[1].clone()))?,
            "fan_in" => want(1).map(|_| Init::FanIn(a[0].clone()))?,
            _ => {
                return Err(syn::Error::new(
                    kind.span(),
                    "unknown initialisation: zeros, ones, uniform(lo, hi), normal(mean, std) or fan_in(n)",
                ))
            }
        };
        Ok(ParamArgs { init })
    }
}

impl Parse for Shapes {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut input_ty = None;
        let mut output = None;
        let mut params = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "input" => input_ty = Some(input.parse::<Type>()?),
                "output" => output = Some(input.parse::<Type>()?),
                "params" => params = Some(input.parse::<Expr>()?),
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        "expected `input = Rank.., output = Rank.., params = N`",
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let input_ty = input_ty.ok_or_else(|| {
            syn::Error::new(
                input.span(),
                "#[shapes(..)] needs `input = ..`: the unbatched input shape, e.g. `Rank3<1, 28, 28>`",
            )
        })?;
        Ok(Shapes {
            input: input_ty,
            output,
            params,
            span: Span::call_site(),
        })
    }
}

/// Turns a list into nested tuples of at most six (dfdx implements its field visitors for
/// tuples up to six), so any number of fields can be visited.
pub fn nest(items: Vec<TokenStream>) -> TokenStream {
    if items.len() <= 6 {
        return quote!((#(#items,)*));
    }
    let groups: Vec<TokenStream> = items
        .chunks(6)
        .map(|c| {
            let c = c.to_vec();
            quote!((#(#c,)*))
        })
        .collect();
    nest(groups)
}

/// A float literal for a number written in an attribute, as f64.
pub fn as_f64(e: &Expr) -> TokenStream {
    if let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(i),
        ..
    }) = e
    {
        let f = LitFloat::new(&format!("{}.0", i.base10_digits()), i.span());
        return quote!(#f);
    }
    quote!((#e) as f64)
}
