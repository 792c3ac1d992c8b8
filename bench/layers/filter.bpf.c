/* The floor's packet filter, compiled by bench/layers.py with clang as a person doing the layers suite by hand
 * would: drop or pass IPv4 TCP by port, at XDP (-DXDP) or tc (direct action). Not used by the collection, whose
 * bpf_filter module builds its bytecode in Python. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#define SEC(name) __attribute__((section(name), used))

#ifdef XDP
#define CTX struct xdp_md
#define PASS XDP_PASS
#define DROP XDP_DROP
#else
#define CTX struct __sk_buff
#define PASS TC_ACT_UNSPEC
#define DROP TC_ACT_SHOT
#endif

SEC("prog")
int filter(CTX *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *tcp = (void *)(ip + 1);

	if ((void *)(tcp + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->protocol != IPPROTO_TCP)
		return PASS;
	if ((SPORT && tcp->source == __builtin_bswap16(SPORT)) || (DPORT && tcp->dest == __builtin_bswap16(DPORT)))
		return ACTION;
	return PASS;
}

char _license[] SEC("license") = "GPL";
