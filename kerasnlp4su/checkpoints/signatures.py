"""Tell which family wrote a checkpoint from its variable names and config keys.

A `Signature` is data a family declares (in `kerasnlp4su.models`): regular
expressions its variable names must / must not match, and config keys its
config must / must not carry. Variable names alone cannot separate every
family (a NEZHA checkpoint holds exactly RoFormer v1's names), so config
keys take part whenever the config is known.
"""

import re


class Signature:
    """What a family's checkpoints look like.

    Args:
        required: patterns (`re.fullmatch` on variable names); each must
            match at least one name. The first name matching the first
            pattern is the evidence shown in messages.
        forbidden: patterns no variable name may match.
        config_keys: keys the config must carry (not null).
        forbidden_config_keys: keys the config must not carry (or null).

    Config conditions are only checked when a config is given: from names
    alone such a family is a candidate.

    Example:
    >>> s = Signature(required=[r"toy/encoder/.*"], forbidden_config_keys=["use_relative_position"])
    >>> s.match(["toy/encoder/layer_0/kernel"], {"use_relative_position": True})
    >>> s.match(["toy/encoder/layer_0/kernel"])
    'toy/encoder/layer_0/kernel'
    """

    def __init__(self, required=(), forbidden=(), config_keys=(), forbidden_config_keys=()):
        if not required and not config_keys:
            raise ValueError("a Signature needs at least one required variable pattern or config key")
        self.required = tuple(re.compile(p) for p in required)
        self.forbidden = tuple(re.compile(p) for p in forbidden)
        self.config_keys = tuple(config_keys)
        self.forbidden_config_keys = tuple(forbidden_config_keys)

    def specificity(self, with_config):
        """How many conditions a match satisfied (the most specific match wins)."""
        count = len(self.required) + len(self.forbidden)
        if with_config:
            count += len(self.config_keys) + len(self.forbidden_config_keys)
        return count

    def match(self, names, config=None):
        """The evidence (a variable name or config key) when `names`/`config` fit, else None."""
        names = sorted(names)
        evidence = None
        for pattern in self.required:
            found = next((n for n in names if pattern.fullmatch(n)), None)
            if found is None:
                return None
            evidence = evidence or found
        if any(p.fullmatch(n) for p in self.forbidden for n in names):
            return None
        if config is not None:
            if any(config.get(k) is None for k in self.config_keys):
                return None
            if any(config.get(k) is not None for k in self.forbidden_config_keys):
                return None
            evidence = evidence or (self.config_keys[0] if self.config_keys else None)
        return evidence


def match_signatures(names, signatures, config=None):
    """Every `(family, evidence)` whose signature fits, most specific first.

    `signatures` is `{family name: Signature}`. Ties keep the order of
    `signatures` (registration order), so the answer is deterministic.

    >>> match_signatures(["a/x"], {"a": Signature(required=["a/.*"]), "b": Signature(required=["b/.*"])})
    [('a', 'a/x')]
    """
    names = list(names)
    found = []
    for order, (family, signature) in enumerate(signatures.items()):
        evidence = signature.match(names, config)
        if evidence is not None:
            found.append((-signature.specificity(config is not None), order, family, evidence))
    return [(family, evidence) for _, _, family, evidence in sorted(found)]
