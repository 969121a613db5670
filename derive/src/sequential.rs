//! `#[derive(Sequential)]`: the fields run in order, as in `nn.Sequential` with named children.

use crate::collection::{self, krate};
use crate::model::Model;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

/// The whole expansion.
pub fn expand(m: &Model) -> TokenStream {
    let collection = collection::generate(m);
    let module = forward(m, false);
    let module_mut = forward(m, true);
    let infer = shape_infer(m);
    let contract = contract(m);
    quote! {
        #collection
        #module
        #module_mut
        #infer
        #contract
    }
}

/// `Module` (or `ModuleMut`) for every input the chain of fields accepts. Each call carries
/// its field's span, so an error found while instantiating a layer's `forward` points at
/// the field that holds it.
fn forward(m: &Model, training: bool) -> TokenStream {
    let k = krate();
    let built = &m.built;
    let bparams = m.builder_params();
    let bargs = m.builder_arg_list();
    let bwhere = m.builder_where();
    let params: Vec<Ident> = m.modules().map(Model::module_param).collect();
    let outs: Vec<Ident> = (1..=params.len())
        .map(|i| format_ident!("__Out{}", i))
        .collect();
    let (trait_, method, receiver) = if training {
        (
            quote!(#k::ModuleMut),
            quote!(try_forward_mut),
            quote!(&mut self),
        )
    } else {
        (quote!(#k::Module), quote!(try_forward), quote!(&self))
    };
    let mut bounds = Vec::new();
    let mut calls = Vec::new();
    let mut prev = quote!(__Input);
    for ((f, p), out) in m.modules().zip(&params).zip(&outs) {
        let ident = &f.ident;
        bounds.push(quote_spanned!(f.span=> #p: #trait_<#prev, Output = #out, Error = D::Err>));
        let borrow = if training {
            quote_spanned!(f.span=> &mut self.#ident)
        } else {
            quote_spanned!(f.span=> &self.#ident)
        };
        // Written out (not `#trait_`, whose tokens carry the derive's span) so that every
        // token of the call, the function path included, carries the field's span.
        calls.push(if training {
            quote_spanned!(f.span=> let x = ::shapesafe::__derive::ModuleMut::try_forward_mut(#borrow, x)?;)
        } else {
            quote_spanned!(f.span=> let x = ::shapesafe::__derive::Module::try_forward(#borrow, x)?;)
        });
        prev = quote!(#out);
    }
    quote! {
        impl<#(#bparams,)* E: #k::Dtype, D: #k::Device<E>, #(#params,)* __Input, #(#outs,)*>
            #trait_<__Input> for #built<#(#bargs,)* E, D, #(#params,)*>
        where
            #(#bwhere,)*
            #(#bounds,)*
        {
            type Output = #prev;
            type Error = D::Err;

            fn #method(#receiver, x: __Input) -> ::core::result::Result<#prev, D::Err> {
                #(#calls)*
                ::core::result::Result::Ok(x)
            }
        }
    }
}

/// `ShapeInfer` on the builder: the fields' shapes chained, their checks, their parameter
/// counts, and summary rows named by field.
fn shape_infer(m: &Model) -> TokenStream {
    let k = krate();
    let bparams = m.builder_params();
    let bwhere = m.builder_where();
    let btype = m.builder_type();
    let name = m.name_expr();
    let shapes: Vec<Ident> = (0..=m.fields.len())
        .map(|i| format_ident!("__S{}", i))
        .collect();
    let mut bounds = Vec::new();
    let mut checks = Vec::new();
    let mut counts = Vec::new();
    let mut rows = Vec::new();
    for (i, f) in m.modules().enumerate() {
        let (ty, input, output) = (&f.ty, &shapes[i], &shapes[i + 1]);
        let field = f.ident.to_string();
        bounds.push(quote_spanned!(f.span=> #ty: #k::ShapeInfer<#input, Output = #output>));
        checks.push(quote_spanned!(f.span=> let () = <#ty as #k::ShapeInfer<#input>>::CHECK;));
        counts.push(quote!(<#ty as #k::ShapeInfer<#input>>::PARAMS));
        rows.push(quote! {
            let start = rows.len();
            <#ty as #k::ShapeInfer<#input>>::summarize(rows);
            #k::name_rows(&mut rows[start..], #field);
        });
    }
    let n = m.modules().count();
    let (first, last) = (&shapes[0], &shapes[n]);
    let used = &shapes[1..=n];
    quote! {
        impl<#(#bparams,)* #first: #k::StaticShape, #(#used: #k::StaticShape,)*>
            #k::ShapeInfer<#first> for #btype
        where
            #(#bwhere,)*
            #(#bounds,)*
        {
            type Output = #last;
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
    }
}

/// `#[shapes(input = .., output = .., params = ..)]`: an item-level const that `cargo check`
/// evaluates. Each field's check carries the field's span, so a mismatch names the layer and
/// shows the user's line; the contract's own checks point at the attribute.
fn contract(m: &Model) -> TokenStream {
    let Some(shapes) = &m.shapes else {
        return quote!();
    };
    let k = krate();
    let model = m.builder.to_string();
    let input = &shapes.input;
    let mut aliases = Vec::new();
    let mut checks = Vec::new();
    let mut prev = quote!(#input);
    for (i, f) in m.modules().enumerate() {
        let ty = &f.ty;
        let alias = format_ident!("__S{}", i + 1);
        aliases
            .push(quote_spanned!(f.span=> type #alias = <#ty as #k::ShapeInfer<#prev>>::Output;));
        checks.push(quote_spanned!(f.span=> let () = <#ty as #k::ShapeInfer<#prev>>::CHECK;));
        prev = quote!(#alias);
    }
    let builder = &m.builder;
    let output_check = shapes.output.as_ref().map(|out| {
        quote_spanned! {shapes.span=>
            #k::check_contract(
                #model,
                <#input as #k::StaticShape>::DIMS,
                <#prev as #k::StaticShape>::DIMS,
                <#out as #k::StaticShape>::DIMS,
            );
        }
    });
    let params_check = shapes.params.as_ref().map(|p| {
        quote_spanned! {shapes.span=>
            #k::check_params(#model, <#builder as #k::ShapeInfer<#input>>::PARAMS, #p);
        }
    });
    quote! {
        const _: () = {
            #(#aliases)*
            #(#checks)*
            #output_check
            #params_check
        };
    }
}
