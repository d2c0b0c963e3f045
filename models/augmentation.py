"""More text for a distilled student to learn the teacher from: copies of the training texts with
some words replaced by their nearest neighbours in the teacher's token-embedding space.

This is TinyBERT's augmentation (Jiao et al. 2020, after Tang et al. 2019), with the teacher's own
embeddings in place of GloVe and a masked language model, so it needs nothing but the teacher:
'good' becomes 'great', 'excellent' or 'bad', 'movie' becomes 'film'. The copies keep no label;
the teacher's probabilities are their targets, which is what makes a changed meaning harmless.
"""

from typing import Dict, Iterable, List, Sequence

import numpy as np

# Candidates per word: its nearest whole-word tokens by cosine similarity.
NEIGHBOURS = 8


def token_embedding_matrix(teacher, vocabulary_size: int) -> np.ndarray:
  """The teacher's token embeddings: its only [vocabulary, width] weight."""
  matrices = [variable for variable in teacher.variables
              if len(variable.shape) == 2 and variable.shape[0] == vocabulary_size]
  if not matrices:
    raise ValueError(f'The teacher has no [{vocabulary_size}, width] token-embedding weight.')
  return matrices[0].numpy()


def _is_word(token: str) -> bool:
  return token.isalpha() and not token.startswith('##')


def word_neighbours(embeddings: np.ndarray, vocabulary: Sequence[str],
                    words: Iterable[str]) -> Dict[str, List[str]]:
  """For each of `words` (and its lower-cased form) that is a whole-word token: its NEIGHBOURS
  nearest whole-word tokens, nearest first."""
  candidates = np.array([index for index, token in enumerate(vocabulary) if _is_word(token)])
  unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
  candidate_vectors = unit[candidates]
  index_of = {vocabulary[index]: index for index in candidates}
  known = sorted({form for word in words for form in (word, word.lower())
                  if form in index_of})
  count = min(NEIGHBOURS, len(candidates) - 1)
  neighbours = {}
  for start in range(0, len(known), 2048):  # [2048, candidates] similarities at a time
    chunk = known[start:start + 2048]
    similarity = unit[[index_of[word] for word in chunk]] @ candidate_vectors.T
    similarity[np.arange(len(chunk)), np.searchsorted(candidates,
                                                      [index_of[w] for w in chunk])] = -np.inf
    nearest = np.argpartition(-similarity, count - 1, axis=-1)[:, :count]
    for word, row, scores in zip(chunk, nearest, similarity, strict=True):
      neighbours[word] = [vocabulary[candidates[column]]
                          for column in row[np.argsort(-scores[row], kind='stable')]]
  return neighbours


def augment(texts: Sequence[str], neighbours: Dict[str, List[str]], copies: int,
            replace_probability: float, min_words: int, seed: int) -> List[str]:
  """`copies` variants of each text of at least `min_words` words: each word with neighbours
  (looked up as it is, else lower-cased, for an uncased vocabulary) is replaced by one of them
  with `replace_probability`. Words are what whitespace separates."""
  rng = np.random.default_rng(seed)
  augmented = []
  for text in texts:
    words = text.split()
    if len(words) < min_words:
      continue
    keys = [word if word in neighbours else word.lower() for word in words]
    for _ in range(copies):
      augmented.append(' '.join(
          neighbours[key][rng.integers(len(neighbours[key]))]
          if key in neighbours and rng.random() < replace_probability else word
          for word, key in zip(words, keys, strict=True)))
  return augmented
