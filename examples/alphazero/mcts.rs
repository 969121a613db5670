//! Monte Carlo tree search guided by the network, AlphaZero's PUCT: each simulation walks
//! down by `Q + c * P * sqrt(N) / (1 + n)`, asks the network at the leaf, and backs the
//! value up; the root's visit counts are the improved policy.

use crate::game::Board;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma};
use std::collections::HashMap;

/// The exploration constant of PUCT.
const C_PUCT: f32 = 1.5;

/// What the search asks of the network: move probabilities over the legal moves and the
/// value of `board` for the player to move.
pub trait Evaluator {
    fn evaluate(&mut self, board: &Board) -> ([f32; 9], f32);
}

/// Remembers the network's answers while its weights stay the same (tic-tac-toe has only
/// 5,478 positions, so most searches find their leaves already asked).
pub struct Cached<F> {
    pub network: F,
    answers: HashMap<[i8; 9], ([f32; 9], f32)>,
}

impl<F: FnMut(&Board) -> ([f32; 9], f32)> Cached<F> {
    pub fn new(network: F) -> Self {
        Self {
            network,
            answers: HashMap::new(),
        }
    }
}

impl<F: FnMut(&Board) -> ([f32; 9], f32)> Evaluator for Cached<F> {
    fn evaluate(&mut self, board: &Board) -> ([f32; 9], f32) {
        if let Some(&answer) = self.answers.get(&board.cells) {
            return answer;
        }
        let answer = (self.network)(board);
        self.answers.insert(board.cells, answer);
        answer
    }
}

struct Node {
    board: Board,
    prior: f32,
    visits: u32,
    /// Sum of the results for the player who moved into this node.
    value_sum: f32,
    /// `(move, node)` pairs, empty until expanded.
    children: Vec<(usize, usize)>,
}

/// Root noise for self-play: `(1 - weight) * P + weight * Dirichlet(alpha)`.
pub struct Noise<'a> {
    pub alpha: f64,
    pub weight: f32,
    pub rng: &'a mut StdRng,
}

/// Runs `simulations` simulations from `board` and returns the root's visit counts per cell.
pub fn search(
    board: &Board,
    simulations: usize,
    net: &mut impl Evaluator,
    noise: Option<Noise<'_>>,
) -> [u32; 9] {
    let mut tree = vec![Node {
        board: *board,
        prior: 1.0,
        visits: 0,
        value_sum: 0.0,
        children: Vec::new(),
    }];
    expand(&mut tree, 0, net);
    if let Some(noise) = noise {
        add_noise(&mut tree, noise);
    }
    for _ in 0..simulations {
        simulate(&mut tree, net);
    }
    let mut counts = [0; 9];
    for &(m, child) in &tree[0].children {
        counts[m] = tree[child].visits;
    }
    counts
}

/// Creates `node`'s children with the network's priors; returns its value for the mover.
fn expand(tree: &mut Vec<Node>, node: usize, net: &mut impl Evaluator) -> f32 {
    let board = tree[node].board;
    if let Some(outcome) = board.outcome() {
        // The last move was the opponent's: a decided game is a loss for the mover.
        return if outcome == 0 { 0.0 } else { -1.0 };
    }
    let (priors, value) = net.evaluate(&board);
    for m in board.legal() {
        tree.push(Node {
            board: board.play(m),
            prior: priors[m],
            visits: 0,
            value_sum: 0.0,
            children: Vec::new(),
        });
        let child = tree.len() - 1;
        tree[node].children.push((m, child));
    }
    value
}

fn add_noise(tree: &mut [Node], noise: Noise<'_>) {
    let children: Vec<usize> = tree[0].children.iter().map(|&(_, c)| c).collect();
    let gamma = Gamma::new(noise.alpha, 1.0).expect("alpha is positive");
    let draws: Vec<f64> = children.iter().map(|_| gamma.sample(noise.rng)).collect();
    let total: f64 = draws.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    for (&c, d) in children.iter().zip(draws) {
        let p = &mut tree[c].prior;
        *p = (1.0 - noise.weight) * *p + noise.weight * (d / total) as f32;
    }
}

fn simulate(tree: &mut Vec<Node>, net: &mut impl Evaluator) {
    let mut path = vec![0];
    let mut node = 0;
    while !tree[node].children.is_empty() {
        let parent_visits = tree[node].visits.max(1) as f32;
        let score = |&(_, c): &(usize, usize)| {
            let child: &Node = &tree[c];
            let q = if child.visits == 0 {
                0.0
            } else {
                child.value_sum / child.visits as f32
            };
            q + C_PUCT * child.prior * parent_visits.sqrt() / (1.0 + child.visits as f32)
        };
        let (_, best) = *tree[node]
            .children
            .iter()
            .max_by(|a, b| score(a).total_cmp(&score(b)))
            .expect("children are not empty");
        node = best;
        path.push(node);
    }
    // The leaf's value for its mover, then for each ancestor's mover in turn.
    let mut value = expand(tree, node, net);
    for &n in path.iter().rev() {
        tree[n].visits += 1;
        // Stored for the player who moved into `n`: the opponent of its mover.
        tree[n].value_sum -= value;
        value = -value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network that knows nothing: uniform priors, value 0.
    fn uniform(board: &Board) -> ([f32; 9], f32) {
        let legal = board.legal();
        let mut p = [0.0; 9];
        for &m in &legal {
            p[m] = 1.0 / legal.len() as f32;
        }
        (p, 0.0)
    }

    #[test]
    fn search_finds_the_winning_move_and_the_block() {
        // X: 0, 1; O: 3, 4; X to move wins at 2.
        let win = Board::new().play(0).play(3).play(1).play(4);
        let counts = search(&win, 200, &mut Cached::new(uniform), None);
        assert_eq!(counts.iter().enumerate().max_by_key(|c| c.1).unwrap().0, 2);
        // X: 0, 1; O: 4; O to move must block at 2.
        let block = Board::new().play(0).play(4).play(1);
        let counts = search(&block, 400, &mut Cached::new(uniform), None);
        assert_eq!(counts.iter().enumerate().max_by_key(|c| c.1).unwrap().0, 2);
    }
}
