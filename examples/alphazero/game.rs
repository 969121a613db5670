//! Tic-tac-toe: the rules, the board's eight symmetries, and a perfect player by minimax.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The eight lines of three.
const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

/// A position: `cells[i]` is `1` for X, `-1` for O, `0` empty; X moves first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Board {
    pub cells: [i8; 9],
}

impl Board {
    pub fn new() -> Self {
        Self { cells: [0; 9] }
    }

    /// `1` when X is to move, `-1` for O.
    pub fn mover(&self) -> i8 {
        let placed = self.cells.iter().filter(|&&c| c != 0).count();
        if placed % 2 == 0 {
            1
        } else {
            -1
        }
    }

    pub fn legal(&self) -> Vec<usize> {
        (0..9).filter(|&i| self.cells[i] == 0).collect()
    }

    pub fn play(&self, cell: usize) -> Self {
        debug_assert_eq!(self.cells[cell], 0, "cell {cell} is taken");
        let mut next = *self;
        next.cells[cell] = self.mover();
        next
    }

    /// `Some(1)` or `Some(-1)` for a win by X or O, `Some(0)` for a full board, else `None`.
    pub fn outcome(&self) -> Option<i8> {
        for [a, b, c] in LINES {
            let s = self.cells[a];
            if s != 0 && s == self.cells[b] && s == self.cells[c] {
                return Some(s);
            }
        }
        self.cells.iter().all(|&c| c != 0).then_some(0)
    }

    /// The network's view: the mover's stones, then the opponent's, as `(2, 3, 3)` planes.
    pub fn planes(&self) -> [f32; 18] {
        let me = self.mover();
        let mut planes = [0.0; 18];
        for (i, &c) in self.cells.iter().enumerate() {
            if c == me {
                planes[i] = 1.0;
            } else if c == -me {
                planes[9 + i] = 1.0;
            }
        }
        planes
    }
}

/// The eight symmetries of the square as cell permutations: `image[i]` is where cell `i`
/// goes. Rotations by 0, 90, 180, 270 degrees, each with and without a mirror.
pub fn symmetries() -> [[usize; 9]; 8] {
    let rotate = |i: usize| {
        let (r, c) = (i / 3, i % 3);
        c * 3 + (2 - r)
    };
    let mirror = |i: usize| {
        let (r, c) = (i / 3, i % 3);
        r * 3 + (2 - c)
    };
    let mut out = [[0; 9]; 8];
    for (k, perm) in out.iter_mut().enumerate() {
        for (i, p) in perm.iter_mut().enumerate() {
            let mut j = if k >= 4 { mirror(i) } else { i };
            for _ in 0..k % 4 {
                j = rotate(j);
            }
            *p = j;
        }
    }
    out
}

/// Game values under perfect play for every reachable position, from X's side.
pub struct Minimax {
    values: std::collections::HashMap<[i8; 9], i8>,
}

impl Minimax {
    pub fn solve() -> Self {
        let mut solver = Self {
            values: std::collections::HashMap::new(),
        };
        solver.value(&Board::new());
        solver
    }

    /// The value for X of `board` with perfect play from both sides.
    pub fn value(&mut self, board: &Board) -> i8 {
        if let Some(&v) = self.values.get(&board.cells) {
            return v;
        }
        let v = match board.outcome() {
            Some(o) => o,
            None => {
                let children = board.legal().into_iter().map(|m| board.play(m));
                let values: Vec<i8> = children.map(|b| self.value(&b)).collect();
                if board.mover() == 1 {
                    *values.iter().max().expect("a live board has a move")
                } else {
                    *values.iter().min().expect("a live board has a move")
                }
            }
        };
        self.values.insert(board.cells, v);
        v
    }

    /// A perfect move, chosen at random among the equally good ones so that games vary.
    pub fn best_move(&mut self, board: &Board, rng: &mut StdRng) -> usize {
        let me = board.mover();
        let scored: Vec<(usize, i8)> = board
            .legal()
            .into_iter()
            .map(|m| (m, me * self.value(&board.play(m))))
            .collect();
        let best = scored.iter().map(|&(_, v)| v).max().expect("a live board");
        let moves: Vec<usize> = scored
            .into_iter()
            .filter(|&(_, v)| v == best)
            .map(|(m, _)| m)
            .collect();
        *moves.choose(rng).expect("at least one best move")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_play_draws_and_wins_are_seen() {
        let mut solver = Minimax::solve();
        assert_eq!(solver.value(&Board::new()), 0);
        // X in a corner, O on an edge next to it: X wins.
        let b = Board::new().play(0).play(1);
        assert_eq!(solver.value(&b), 1);
        assert_eq!(
            Board {
                cells: [1, 1, 1, -1, -1, 0, 0, 0, 0]
            }
            .outcome(),
            Some(1)
        );
    }

    #[test]
    fn symmetries_are_distinct_permutations() {
        let all = symmetries();
        for perm in &all {
            let mut sorted = *perm;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 8);
        // A quarter turn takes the top-left corner to the top-right.
        assert_eq!(all[1][0], 2);
    }
}
