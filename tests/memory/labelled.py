"""A small labelled set for recall quality: memories, and queries with the memory they should recall.

Used by the recall test (precision and recall at the default threshold) and by the
calibration printout that chose ``[memory].min_similarity``. Each query names the index of
the one memory that answers it, or None when nothing stored is relevant.
"""

from __future__ import annotations

MEMORIES: list[str] = [
    "My dog is called Rex",  # 0
    "I live in Berlin",  # 1
    "I am allergic to peanuts",  # 2
    "My favourite programming language is Rust",  # 3
    "I work as a nurse at the city hospital",  # 4
    "My sister Anna lives in Oslo",  # 5
    "I prefer tea over coffee",  # 6
    "My birthday is on the 4th of March",  # 7
    "I drive a red Volvo",  # 8
    "I am learning to play the piano",  # 9
    "I hate horror movies",  # 10
    "My daughter's name is Mia",  # 11
    "I run a marathon every spring",  # 12
    "I am vegetarian",  # 13
    "My laptop runs Arch Linux",  # 14
    "I support Liverpool football club",  # 15
    "My wife is a primary school teacher",  # 16
    "I grew up on a farm in Ireland",  # 17
    "I'm afraid of flying",  # 18
    "My favourite book is Dune",  # 19
    "I speak Spanish and a little Japanese",  # 20
    "I have two cats named Salt and Pepper",  # 21
    "I usually go to bed around midnight",  # 22
    "My team uses PostgreSQL in production",  # 23
]

QUERIES: list[tuple[str, int | None]] = [
    ("what's my pet's name?", 0),
    ("what is my dog called?", 0),
    ("which city do I live in?", 1),
    ("can I eat this satay sauce?", 2),
    ("which language do I like to code in?", 3),
    ("what is my job?", 4),
    ("where does my sister live?", 5),
    ("should I order a hot drink for me, tea or coffee?", 6),
    ("when is my birthday?", 7),
    ("what car do I have?", 8),
    ("which instrument am I practising?", 9),
    ("recommend me a film to watch tonight", 10),
    ("what is my child called?", 11),
    ("help me plan my training for a long-distance race", 12),
    ("suggest a dinner recipe for me", 13),
    ("which operating system is on my computer?", 14),
    ("which football team do I follow?", 15),
    ("what does my wife do for a living?", 16),
    ("where did I grow up?", 17),
    ("I have a long trip abroad, should I fly?", 18),
    ("what novel do I love most?", 19),
    ("which languages do I speak?", 20),
    ("what are my cats called?", 21),
    ("what time do I go to sleep?", 22),
    ("which database does my team use?", 23),
    ("what is the capital of Australia?", None),
    ("explain how photosynthesis works", None),
    ("convert 5 miles to kilometres", None),
    ("write a haiku about autumn leaves", None),
    ("what's 17 times 23?", None),
    ("how do I reverse a list in Python?", None),
    ("tell me a joke about penguins", None),
]
