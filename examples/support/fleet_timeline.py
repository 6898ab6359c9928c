"""Where a bench_fleet run's time went, from the state it keeps:
    RESCUE_BENCH_KEEP=/tmp/fleet target/release/examples/bench_fleet
    python3 examples/support/fleet_timeline.py /tmp/fleet
Prints when runs were ready to attach, each rescue VM's copies and how busy its places were,
and the place-seconds idle while a run waited (on another VM: what choosing the rescue VM at
attach time would win back) or with no run waiting (the last wave)."""
import json, glob, sys, datetime as dt
root = sys.argv[1]
def t(s):
    return dt.datetime.fromisoformat(s.replace('Z','+00:00')).timestamp() if s else None
runs=[]
for f in glob.glob(f"{root}/state/runs/*/journal.json"):
    j=json.load(open(f))
    steps={s['id']:s for s in j['steps']}
    def sent(i):
        c=[t(x['time']) for x in steps[i].get('calls',[]) if x.get('time')]
        return min(c) if c else None
    r=dict(vm=j['inputs'].get('rescue_vm'), created=t(j['created']),
           attach_start=t(steps['attach'].get('started')), attach_sent=sent('attach'),
           attach_end=t(steps['attach'].get('ended')), fsck_end=t(steps['fsck'].get('ended')),
           detach_sent=sent('detach'), detach_end=t(steps['detach'].get('ended')),
           end=max(t(s.get('ended')) for s in j['steps'] if s.get('ended')))
    runs.append(r)
t0=min(r['created'] for r in runs)
for r in runs:
    for k in list(r):
        if k!='vm' and r[k] is not None: r[k]-=t0
runs.sort(key=lambda r:r['attach_sent'])
print("wall(last end)=%.1f"%max(r['end'] for r in runs))
print("attach_start (ready to attach) min/median/max: %.1f %.1f %.1f"%(min(r['attach_start'] for r in runs), sorted(r['attach_start'] for r in runs)[25], max(r['attach_start'] for r in runs)))
print("post (end-detach_end) min/mean/max: %.1f %.1f %.1f"%(min(r['end']-r['detach_end'] for r in runs), sum(r['end']-r['detach_end'] for r in runs)/50, max(r['end']-r['detach_end'] for r in runs)))
vms=sorted(set(r['vm'] for r in runs))
for vm in vms:
    rs=[r for r in runs if r['vm']==vm]
    busy=sum(r['detach_end']-r['attach_sent'] for r in rs)
    first=min(r['attach_sent'] for r in rs); last=max(r['detach_end'] for r in rs)
    print(f"{vm}: {len(rs)} copies, first attach {first:.1f}, last detach {last:.1f}, busy {busy:.1f} s = {busy/(4*(last-first))*100:.0f}% of 4 places over its span; holds " + " ".join("%.1f"%(r['detach_end']-r['attach_sent']) for r in rs))
# waste: at each instant, idle places on some VM while a run of any VM is waiting (ready, not yet sent)

ts=[i*0.1 for i in range(int(max(r["end"] for r in runs)*10))]
idle_wait=0; idle_own=0
for x in ts:
    busy={vm:0 for vm in vms}; waiting={vm:0 for vm in vms}
    for r in runs:
        if r['attach_sent']<=x<r['detach_end']: busy[r['vm']]+=1
        if r['attach_start']<=x<r['attach_sent']: waiting[r['vm']]+=1
    tot_wait=sum(waiting.values())
    idle=sum(max(0,4-b) for b in busy.values())
    own=sum(min(max(0,4-busy[v]), waiting[v]) for v in vms)
    idle_wait+= (min(idle, tot_wait)-own)*0.1
    idle_own+= own*0.1
print("place-seconds idle on another VM while a run waited: %.1f (= %.1f s of the 20 places); idle on its own VM while it waited: %.1f"%(idle_wait, idle_wait/20, idle_own))
# idle at the tail: no run waiting, places idle
tail=0
for x in ts:
    if x < 20: continue
    busy=sum(1 for r in runs if r['attach_sent']<=x<r['detach_end'])
    waiting=sum(1 for r in runs if r['attach_start']<=x<r['attach_sent'])
    notyet=sum(1 for r in runs if x<r['attach_start'])
    if waiting==0: tail+=(20-busy)*0.1
print("place-seconds idle with no run waiting (after 20 s): %.1f"%tail)
