//! The LaTeX math subset of stage 2: tokens ([`lexer`]) and expression trees ([`parser`]).

pub mod lexer;
pub mod parser;

pub use lexer::{LexError, Tok, lex};
pub use parser::{BinOp, Expr, Func, ParseError, parse_expression};
