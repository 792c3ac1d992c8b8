# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario files on the controller: reading, checking against the JSON Schema, matrix variants."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import traceback

import yaml

try:
    import jsonschema
except ImportError:
    jsonschema = None
    JSONSCHEMA_IMPORT_ERROR = traceback.format_exc()
else:
    JSONSCHEMA_IMPORT_ERROR = None

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'schemas', 'scenario.schema.json')
VARIANT_KEYS = frozenset(['id', 'title', 'label', 'expect', 'notes', 'reverse', 'nft_priority', 'iptables_backend', 'reload'])
_MAX_ERRORS = 10
# "hook input priority 0" or "hook ingress device eth0 priority -10" in nft text
_NFT_PRIORITY = re.compile(r'(\bhook\s+\w+\s+(?:device\s+"?[^\s;"]+"?\s+)?priority\s+)([^\s;]+)')


class ScenarioFileError(Exception):
    pass


def _load_schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def _field(path):
    out = ''
    for part in path:
        out += '[%d]' % part if isinstance(part, int) else ('.' if out else '') + str(part)
    return out or '(top level)'


def check(data, origin):
    """Raise ScenarioFileError naming ``origin`` and each failing field unless ``data`` fits the schema."""
    if jsonschema is None:
        raise ScenarioFileError('checking %s needs the jsonschema Python library on the controller' % origin)
    validator = jsonschema.Draft202012Validator(_load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = ['%s: %s' % (_field(e.absolute_path), e.message) for e in errors[:_MAX_ERRORS]]
        if len(errors) > _MAX_ERRORS:
            lines.append('... and %d more' % (len(errors) - _MAX_ERRORS))
        raise ScenarioFileError('%s is not a valid scenario:\n  %s' % (origin, '\n  '.join(lines)))


def load(path):
    """The scenario in file ``path``, checked against the schema."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (IOError, OSError) as e:
        raise ScenarioFileError('cannot read scenario %s: %s' % (path, e))
    except yaml.YAMLError as e:
        raise ScenarioFileError('%s is not valid YAML: %s' % (path, e))
    check(data, path)
    return data


def _set_priority(step, priority):
    args = step['nft']
    if 'ruleset' in args:
        args['ruleset'] = _NFT_PRIORITY.sub(lambda m: m.group(1) + str(priority), args['ruleset'])
    for chain in args.get('chains') or []:
        if chain.get('hook'):
            chain['priority'] = priority


def apply_variant(scenario, variant, origin):
    """A copy of ``scenario`` changed by ``variant`` (see the scenario module's variant option)."""
    unknown = sorted(set(variant) - VARIANT_KEYS)
    if unknown:
        raise ScenarioFileError('%s: unknown variant keys %s (known: %s)' % (origin, unknown, sorted(VARIANT_KEYS)))
    out = copy.deepcopy(scenario)
    steps = out['steps']
    if variant.get('reverse'):
        steps.reverse()
    if variant.get('nft_priority') is not None:
        for step in steps:
            if 'nft' in step:
                _set_priority(step, variant['nft_priority'])
    if variant.get('iptables_backend'):
        for step in steps:
            if 'iptables' in step:
                step['iptables']['backend'] = variant['iptables_backend']
    if variant.get('reload'):
        rulesets = [step for step in steps if 'ruleset' in step.get('nft', {})]
        if not rulesets:
            raise ScenarioFileError('%s: variant reload needs an nft step with a ruleset' % origin)
        reload_step = copy.deepcopy(rulesets[-1])
        reload_step['nft']['reload'] = True
        steps.append(reload_step)
    for key in ('id', 'title', 'expect', 'notes'):
        if key in variant:
            out[key] = copy.deepcopy(variant[key])
    if variant.get('label'):
        out['title'] = '%s (%s)' % (out['title'], variant['label'])
    out['variant'] = dict((k, v) for k, v in variant.items() if k not in ('id', 'title', 'label', 'expect', 'notes'))
    out['variant']['of'] = scenario['id']
    check(out, '%s with variant %s' % (origin, out['id']))
    return out


def matrix_runs(variants, scenario_dir):
    """One {src, variant} per row of a matrix (see playbooks/scenarios/matrix.yml), variant by variant."""
    runs = []
    for variant in variants:
        for row in variant['expect']:
            change = dict(variant.get('change') or {})
            change.update(id='%s-%s' % (row['scenario'], variant['id']), label=variant['label'],
                          expect=dict(reached=row['reached'], trace=list(row['trace'])))
            if variant.get('notes'):
                change['notes'] = variant['notes']
            runs.append(dict(src=os.path.join(scenario_dir, row['scenario'] + '.yml'), variant=change))
    return runs
