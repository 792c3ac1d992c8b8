# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step kinds a scenario can use, by the key a step gives (see steps.base)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils.steps import bpf, iptables, nft, ovs

KINDS = dict((kind.name, kind) for kind in (iptables.KIND, nft.KIND, bpf.KIND, ovs.KIND))
