//! `#[derive(CustomModule)]`: the plumbing of a model whose `forward` the user writes.

use crate::collection::{self, krate};
use crate::model::{FieldKind, Model};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

/// The whole expansion.
pub fn expand(m: &Model) -> syn::Result<TokenStream> {
    let collection = collection::generate(m);
    let infer = shape_infer(m)?;
    Ok(quote! {
        #collection
        #infer
    })
}

/// With `#[shapes(input = .., output = ..)]` on the struct: `ShapeInfer` for that input, the
/// output as declared (the forward is the user's), the checks and parameter counts of the
/// sub-modules at the inputs their own `#[shapes(input = ..)]` give, and a summary row per
/// field. The contract const runs those checks under `cargo check`.
fn shape_infer(m: &Model) -> syn::Result<TokenStream> {
    let Some(shapes) = &m.shapes else {
        return Ok(quote!());
    };
    let k = krate();
    let builder = &m.builder;
    let model = builder.to_string();
    let input = &shapes.input;
    let Some(output) = &shapes.output else {
        return Err(syn::Error::new(
            shapes.span,
            "#[derive(CustomModule)] cannot see what your forward returns: give `output = ..` in #[shapes(..)]",
        ));
    };
    let name = m.name_expr();
    let mut checks = Vec::new();
    let mut counts = Vec::new();
    let mut rows = Vec::new();
    for f in &m.fields {
        let (ty, field) = (&f.ty, f.ident.to_string());
        match &f.kind {
            FieldKind::Module => {
                let Some(at) = &f.input else {
                    return Err(syn::Error::new(
                        f.span,
                        format!("with #[shapes(..)] on the model, each layer needs the shape its forward gives it: add `#[shapes(input = ..)]` to `{field}`"),
                    ));
                };
                checks.push(quote_spanned!(f.span=> let () = <#ty as #k::ShapeInfer<#at>>::CHECK;));
                counts.push(quote!(<#ty as #k::ShapeInfer<#at>>::PARAMS));
                rows.push(quote! {
                    let start = rows.len();
                    <#ty as #k::ShapeInfer<#at>>::summarize(rows);
                    #k::name_rows(&mut rows[start..], #field);
                });
            }
            FieldKind::Param(_) => {
                counts.push(quote!(#k::product(<#ty as #k::StaticShape>::DIMS)));
                rows.push(quote! {
                    rows.push(#k::SummaryRow {
                        layer: ::std::format!("{}: Parameter", #field),
                        output: <#ty as #k::StaticShape>::DIMS.to_vec(),
                        params: #k::product(<#ty as #k::StaticShape>::DIMS),
                    });
                });
            }
        }
    }
    let params_check = shapes.params.as_ref().map(|p| {
        quote_spanned! {shapes.span=>
            #k::check_params(#model, <#builder as #k::ShapeInfer<#input>>::PARAMS, #p);
        }
    });
    Ok(quote! {
        impl #k::ShapeInfer<#input> for #builder {
            type Output = #output;
            const CHECK: () = {
                #(#checks)*
            };
            const PARAMS: usize = 0 #(+ #counts)*;

            fn name() -> ::std::string::String {
                #name
            }

            fn summarize(rows: &mut ::std::vec::Vec<#k::SummaryRow>) {
                #(#rows)*
            }
        }

        const _: () = {
            let () = <#builder as #k::ShapeInfer<#input>>::CHECK;
            #params_check
        };
    })
}
