//! Every function call a rule writes, in whatever form: a statement (`notify(...);`), an
//! expression, a branch's bare value (`if x { restart(c) } else { notify(...) }`), a
//! `return`, a `break` value, a `switch` arm, a method (`i.after("10s")`), inside a
//! closure or another `fn` of the file. Rhai parses a call standing as a statement into
//! `Stmt::FnCall` and one inside an expression into `Expr::FnCall`: every check that
//! asks "which calls does this rule make?" asks here, so none sees only one of the two.

use rhai::{ASTNode, Expr, ImmutableString, Position, Stmt, AST};

/// One call as written.
pub(super) struct Call<'a> {
    pub name: &'a str,
    pub pos: Position,
    /// The value before the dot of a method call, which is the function's first argument.
    receiver: Option<&'a Expr>,
    method: bool,
    args: &'a [Expr],
}

impl<'a> Call<'a> {
    /// How many arguments the function is given (a method's receiver counts).
    pub fn arity(&self) -> usize {
        self.args.len() + usize::from(self.method)
    }

    /// Argument `index` of the function (0 is a method's receiver), if written at all.
    fn arg(&self, index: usize) -> Option<&'a Expr> {
        match (self.method, index) {
            (true, 0) => self.receiver,
            (true, i) => self.args.get(i - 1),
            (false, i) => self.args.get(i),
        }
    }

    /// Argument `index` when it is a literal string, with its position.
    pub fn literal(&self, index: usize) -> Option<(&'a ImmutableString, Position)> {
        match self.arg(index)? {
            Expr::StringConstant(text, pos) => Some((text, *pos)),
            _ => None,
        }
    }
}

/// Rhai's `AST::walk`, which also enters what it leaves out: the value of `break value`.
/// Return `false` from `on_node` to stop.
pub(super) fn walk(ast: &AST, on_node: &mut dyn FnMut(&[ASTNode]) -> bool) -> bool {
    ast.walk(&mut |nodes: &[ASTNode]| visit(nodes, on_node))
}

fn visit(nodes: &[ASTNode], on_node: &mut dyn FnMut(&[ASTNode]) -> bool) -> bool {
    if !on_node(nodes) {
        return false;
    }
    if let Some(ASTNode::Stmt(Stmt::BreakLoop(Some(value), ..))) = nodes.last().copied() {
        let mut path = nodes.to_vec();
        return value.walk(&mut path, &mut |inner: &[ASTNode]| visit(inner, on_node));
    }
    true
}

/// Calls `on_call` with every unqualified call of the rule, operators included. Return
/// `false` to stop.
pub(super) fn each_call(ast: &AST, on_call: &mut dyn FnMut(&Call<'_>) -> bool) {
    walk(ast, &mut |nodes: &[ASTNode]| {
        call_of(nodes).is_none_or(|call| on_call(&call))
    });
}

/// The call last in `nodes`, if it is one.
pub(super) fn call_of<'a>(nodes: &[ASTNode<'a>]) -> Option<Call<'a>> {
    let (call, pos, method) = match *nodes.last()? {
        ASTNode::Stmt(Stmt::FnCall(call, pos)) | ASTNode::Expr(Expr::FnCall(call, pos)) => {
            (call, *pos, false)
        }
        ASTNode::Expr(Expr::MethodCall(call, pos)) => (call, *pos, true),
        _ => return None,
    };
    if call.is_qualified() {
        // `module::f()`: rules cannot import, so `import` is the error to report.
        return None;
    }
    let receiver = if method { receiver(nodes) } else { None };
    Some(Call {
        name: call.name.as_str(),
        pos,
        receiver,
        method,
        args: &call.args,
    })
}

/// The value before the dot of the method call last in `nodes`. Rhai nests a chain to
/// the right: `x.a().b()` is `x . (a() . b())`, so `a()`'s receiver is `x`, found by
/// going up while the call is the left-hand side of the dot above.
fn receiver<'a>(nodes: &[ASTNode<'a>]) -> Option<&'a Expr> {
    let (last, ancestors) = nodes.split_last()?;
    let ASTNode::Expr(mut child) = *last else {
        return None;
    };
    for ancestor in ancestors.iter().rev() {
        let ASTNode::Expr(expr @ Expr::Dot(dot, ..)) = *ancestor else {
            return None;
        };
        if std::ptr::eq(&dot.rhs, child) {
            return Some(&dot.lhs);
        }
        if !std::ptr::eq(&dot.lhs, child) {
            return None;
        }
        child = expr;
    }
    None
}
