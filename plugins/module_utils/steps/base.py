# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a step kind is, and the points of a packet's way where filters sit.

A step kind is one packet filter a scenario step can set up (iptables, nft, bpf, ovs).
It owns the argument spec its module and the scenario schema share, how a step's
arguments are checked and applied, which observer reads what it registered (the
``layer``), the marks its filters leave in a trace, and the changes the order
matrix's variants make to it. The runner, the hook registry and the report work on
generic entries; adding a kind is one file in this package and its registration in
``steps.KINDS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Where filters sit on a packet's way through one namespace, in the kernel's order (DESIGN.md):
# received, XDP (native in the driver, generic after the skb exists) -> tc ingress -> nft netdev
# ingress -> bridge or OVS -> prerouting -> input -> the socket; sent, output -> postrouting ->
# nft netdev egress (kernel >= 5.16) -> tc egress -> the wire.
RECEIVE = ('xdp', 'tc-ingress', 'netdev-ingress', 'bridge', 'prerouting', 'input')
SEND = ('output', 'postrouting', 'netdev-egress', 'tc-egress')
POINTS = RECEIVE + SEND
# The observers that read what steps register, one per layer: netfilter hooks, BPF attachments, OVS flows.
LAYERS = ('netfilter', 'bpf', 'ovs')


class StepKind:
    """A step kind; subclasses set the attributes and override what differs."""

    name = None        # the step's key in a scenario, and its $defs entry in the scenario schema
    module = None      # the module that takes the same arguments
    spec = None        # that module's argument spec
    rules = {}         # its required_one_of, mutually_exclusive ...
    layer = None       # one of LAYERS
    in_bridge = False  # whether its steps run in the namespace of a bridged lab's switch
    # Arguments a scenario may not give: the lab decides the namespace, never the host's own.
    forbidden = ('host',)
    variant_keys = ()  # the order matrix's variant keys this kind answers (see vary)

    def validate(self, params):
        """Check validated module arguments as far as can be done without a target."""
        raise NotImplementedError

    def lab_roles(self, params):
        """The arguments that name lab roles in a scenario (interfaces, by their peer) as [(key path, role)]."""
        return []

    def bind(self, params, plan, role):
        """``params`` for the lab ``plan`` (lab.LabPlan) once claimed, in ``role``'s namespace: the roles of
        lab_roles replaced by the interface names the lab gave."""
        return params

    def needs(self, params):
        """The host feature these arguments need (a key of the host's feature report), or None."""
        return None

    def apply(self, module, params):
        """Apply the step; dict(filter=the filter that now holds its hooks, changes=[...])."""
        raise NotImplementedError

    def marks(self, params, entry):
        """The marks that ``entry`` (a hook or attachment this step registered) leaves in a trace."""
        return []

    def vary(self, steps, variant):
        """Change the steps of this kind (``{name: args}`` mappings, a copy) for a matrix variant."""
        return steps
