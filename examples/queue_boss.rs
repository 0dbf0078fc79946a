//! Tutorial "Queues", second example: the boss hands out work through a
//! queue of at most three items, blocking while it is full; workers give up
//! once no task came for a while (`get_timeout`, gevent's `Empty`). The
//! tutorial's one-second timeout is scaled down.
use std::time::Duration;

use gevent::queue::Queue;

const PATIENCE: Duration = Duration::from_millis(50);

fn worker(tasks: Queue<u32>, name: &'static str) {
    // Until no task came for a while (gevent raises Empty; we get Err(Empty)).
    while let Ok(task) = tasks.get_timeout(PATIENCE) {
        println!("Arbeiter {name} hat Task {task} bekommen");
        gevent::sleep(Duration::ZERO);
    }
    println!("Ende!");
}

fn boss(tasks: Queue<u32>) {
    for i in 1..10 {
        tasks.put(i);
    }
    println!("Alle Arbeit in Iteration 1 ausgeteilt");
    for i in 10..20 {
        tasks.put(i);
    }
    println!("Alle Arbeit in Iteration 2 ausgeteilt");
}

fn main() {
    let tasks = Queue::bounded(3);
    let mut all = vec![gevent::spawn({
        let t = tasks.clone();
        move || boss(t)
    })];
    for name in ["steve", "john", "bob"] {
        let t = tasks.clone();
        all.push(gevent::spawn(move || worker(t, name)));
    }
    gevent::joinall(&all);
}
